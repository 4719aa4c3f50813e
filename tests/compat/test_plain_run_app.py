"""aiohttp-sockjs programs start their server with plain ``web.run_app(app)``, which leaves
aiohttp's ``handler_cancellation`` off: a lost connection does not cancel the handler that
waits on it. A client that goes away mid-poll or mid-stream must still be noticed at once
(within about a second), not at the next heartbeat, and its session closed 1002 like any
abort (sockjs-protocol: "HandlingClose")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from cursorshare.sockjs import compat as sockjs
from cursorshare.sockjs.compat import MsgType, Session, SessionManager, SockjsMessage
from tests.support.server import free_port

from .conftest import wait_until

#: A generous bound: the check runs every second; heartbeats (25 s) must not be what ends it.
NOTICED_WITHIN = 10.0


class Closed:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: object = None

    async def __call__(self, manager: SessionManager, session: Session, msg: SockjsMessage) -> None:
        if msg.type == MsgType.CLOSED:
            self.reason = session.interrupted
            self.event.set()


@pytest.fixture
async def plain_server() -> AsyncIterator[tuple[int, Closed, SessionManager]]:
    closed = Closed()
    app = web.Application()
    sockjs.add_endpoint(app, closed, name="chat", prefix="/sockjs/")
    manager = sockjs.get_manager("chat", app)
    runner = web.AppRunner(app)  # what web.run_app(app) builds: no handler_cancellation
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield port, closed, manager
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["xhr", "xhr_streaming", "eventsource"])
async def test_a_client_gone_mid_request_is_noticed_without_handler_cancellation(
    plain_server: tuple[int, Closed, SessionManager], transport: str
) -> None:
    port, closed, manager = plain_server
    path = "/sockjs/000/plainrunapp"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    opened = await asyncio.wait_for(reader.readuntil(b"o\n"), 5)
    assert opened.endswith(b"o\n")
    method = "GET" if transport == "eventsource" else "POST"
    writer.write(
        f"{method} {path}/{transport} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    )
    await writer.drain()
    # the receiving request waits (a poll sends nothing yet; a stream its headers)
    await wait_until(lambda: manager.get("plainrunapp", default=None) is not None
                     and manager.get("plainrunapp").acquired)  # fmt: skip
    writer.transport.abort()  # the client goes away without a word
    await asyncio.wait_for(closed.event.wait(), NOTICED_WITHIN)
    assert closed.reason is True  # interrupted: 1002, as with handler_cancellation


async def _request(port: int, method: str, path: str) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("transport", ["xhr_streaming", "xhr"])
async def test_a_request_right_after_an_abort_gets_1002_not_2010(
    plain_server: tuple[int, Closed, SessionManager], transport: str
) -> None:
    # sockjs-protocol's HandlingClose.test_abort_xhr_streaming / _polling: the next request
    # comes at once after the client closed the previous one, with no pause for the server
    # to notice; it must find the session interrupted (1002), or new, never busy (2010).
    port, _closed, manager = plain_server
    path = f"/sockjs/000/abort{transport}"
    reader, writer = await _request(port, "POST", f"{path}/xhr")
    assert (await asyncio.wait_for(reader.readuntil(b"o\n"), 5)).endswith(b"o\n")
    writer.close()
    _, first = await _request(port, "POST", f"{path}/{transport}")
    await wait_until(lambda: manager.get(f"abort{transport}").acquired)
    first.transport.abort()
    reader, writer = await _request(port, "POST", f"{path}/{transport}")
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"]\n"), 5)
        assert answer.endswith(b'c[1002,"Connection interrupted"]\n'), answer
    finally:
        writer.close()
