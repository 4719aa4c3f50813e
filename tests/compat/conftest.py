"""Fixtures for running aiohttp-sockjs programs through `cursorshare.sockjs.compat`.

`serve(app)` starts the program's application on a test server and returns its URL;
`connect(transport, url)` opens one of the protocol-level test clients of tests/support and
closes it at teardown. Tests wait for messages and events, never for time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.support.clients import SockJSClient, make_client

#: Every transport a browser may end up on (htmlfile is what iframe-htmlfile carries).
TRANSPORTS = (
    "websocket",
    "xhr-streaming",
    "eventsource",
    "htmlfile",
    "xhr-polling",
    "jsonp-polling",
)
#: Short, so a client that goes away is noticed quickly; waits stay generous upper bounds.
DISCONNECT_DELAY = 0.5

Serve = Callable[[web.Application], Awaitable[str]]
Connect = Callable[..., Awaitable[SockJSClient]]


@pytest.fixture
def serve(aiohttp_server: Any) -> Serve:
    async def go(app: web.Application) -> str:
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return go


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    opened: list[SockJSClient] = []

    async def go(
        transport: str, url: str, query: str = "", session_id: str | None = None
    ) -> SockJSClient:
        client = make_client(transport)
        if session_id is not None:
            client.session_id = session_id
        opened.append(client)
        await client.connect(url, query)
        return client

    yield go
    for client in opened:
        await client.close()


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for an event the test cannot await directly (a handler call)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
