"""Fixtures for the cursor app suite: the real application on a test server, and clients.

The server is `build_app(Settings(disconnect_delay=1.0, heartbeat_delay=5, tick_ms=30,
resume_grace=30))` (a module may override the `settings` fixture) served by pytest-aiohttp's
`aiohttp_server` (which runs with handler_cancellation=True).
Clients are the test SockJS clients of `tests.support.clients`; the `connect` fixture opens
them and closes every one of them at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cursorshare.config import Settings
from cursorshare.server import build_app
from tests.support.clients import SockJSClient, make_client

DISCONNECT_DELAY = 1.0
TICK_MS = 30
#: Long enough for any resume of a test to come within it.
RESUME_GRACE = 30.0
SETTINGS = Settings(
    disconnect_delay=DISCONNECT_DELAY, heartbeat_delay=5, tick_ms=TICK_MS, resume_grace=RESUME_GRACE
)

#: The five transports every browser of ours may end up on.
TRANSPORTS = ("websocket", "xhr-streaming", "eventsource", "xhr-polling", "jsonp-polling")

Connect = Callable[..., Awaitable[SockJSClient]]


@pytest.fixture
def settings() -> Settings:
    return SETTINGS


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return build_app(settings)


@pytest.fixture
async def server(aiohttp_server: Any, app: web.Application) -> TestServer:
    return await aiohttp_server(app)


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("/ws"))


def query(
    *, v2: bool = True, room: str | None = None, name: str | None = None, resume: str | None = None
) -> str:
    params: dict[str, str] = {}
    if v2:
        params["v"] = "2"
    if room is not None:
        params["room"] = room
    if name is not None:
        params["name"] = name
    if resume is not None:
        params["resume"] = resume
    return urlencode(params)


@pytest.fixture
async def connect(base_url: str) -> AsyncIterator[Connect]:
    """``await connect("websocket", room="r")``: an open client (v2 unless ``v2=False``)."""
    clients: list[SockJSClient] = []

    async def go(
        transport: str = "websocket",
        *,
        v2: bool = True,
        room: str | None = None,
        name: str | None = None,
        resume: str | None = None,
        raw_query: str | None = None,
    ) -> SockJSClient:
        client = make_client(transport)
        clients.append(client)
        await client.connect(
            base_url,
            query=raw_query
            if raw_query is not None
            else query(v2=v2, room=room, name=name, resume=resume),
        )
        return client

    yield go
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 3.0)


async def welcome_of(client: SockJSClient, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The client's welcome message (the first thing a v2 client is told)."""
    message = await client.recv_json(timeout)
    assert message.get("type") == "welcome", message
    return message  # type: ignore[no-any-return]


def is_presence(member: str, status: str) -> Callable[[Any], bool]:
    """A predicate: a v2 presence message saying ``member`` is now ``status``."""
    return lambda m: (
        m.get("type") == "presence" and m.get("id") == member and m.get("status") == status
    )


def is_leave(member: str) -> Callable[[Any], bool]:
    return lambda m: m.get("type") == "leave" and m.get("id") == member


def is_move_from(sender: str, **fields: Any) -> Callable[[Any], bool]:
    """A predicate: a v2 move of ``sender`` (with these field values, when given)."""

    def match(message: Any) -> bool:
        return (
            message.get("type") == "move"
            and message.get("sender") == sender
            and all(message.get(k) == v for k, v in fields.items())
        )

    return match
