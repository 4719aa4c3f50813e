"""Fixtures of the hardening suite: servers with tight limits, clients, and waiting helpers.

- `echo_server(**options)` serves a fresh echo endpoint at ``/echo`` with the given
  `EndpointOptions` (every limit is per endpoint) and returns a `Served`.
- `cursor_server(settings, sndbuf=...)` serves the real application (`build_app`); ``sndbuf``
  sets SO_SNDBUF on the listening socket, which accepted sockets inherit on Linux, so a client
  that stops reading fills the server's buffers in kilobytes instead of megabytes (the kernel
  would otherwise autotune the send buffer up to ``tcp_wmem``'s 4 MiB).
- `connect(transport, base_url, query)` opens a test SockJS client (`tests.support.clients`)
  and closes it at teardown.

Everything listens on and connects to 127.0.0.1; every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, get_port_socket

from cursorshare.config import Settings
from cursorshare.server import SOCKJS, build_app
from cursorshare.sockjs import MsgType, Session, SessionManager, SockjsMessage, add_endpoint
from tests.support.clients import SockJSClient, make_client

#: Default bound of any single wait in the suite, in seconds.
TIMEOUT = 5.0

#: The transports a browser of ours may end up on (htmlfile is a legacy fallback).
TRANSPORTS = ("websocket", "xhr-streaming", "eventsource", "xhr-polling", "jsonp-polling")
#: URL names of the receiving HTTP transports (the ones that create sessions).
HTTP_RECEIVERS = ("xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp")


async def echo(msg: SockjsMessage, session: Session) -> None:
    if msg.type is MsgType.MESSAGE:
        session.send(str(msg.data))


@dataclass
class Served:
    """A running test server with one SockJS endpoint."""

    server: TestServer
    app: web.Application
    manager: SessionManager
    prefix: str

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The endpoint's URL, as SockJS clients are given it."""
        return self.origin + self.prefix

    def url(self, path: str) -> str:
        """``path`` below the endpoint (``"/000/abc/xhr"``)."""
        return self.base_url + path

    def ws_url(self, path: str) -> str:
        return self.url(path).replace("http://", "ws://", 1)


def _socket_factory(
    sndbuf: int | None,
) -> Callable[[str, int, socket.AddressFamily], socket.socket]:
    def make(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
        if sndbuf is None:
            return get_port_socket(host, port, family)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.bind((host, port))
        return sock

    return make


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(app, manager, prefix, sndbuf=None)``: run ``app`` on a test server."""
    servers: list[TestServer] = []

    async def go(
        app: web.Application, manager: SessionManager, prefix: str, *, sndbuf: int | None = None
    ) -> Served:
        server = TestServer(app, host="127.0.0.1", socket_factory=_socket_factory(sndbuf))
        await server.start_server()
        servers.append(server)
        return Served(server, app, manager, prefix)

    yield go
    while servers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(servers.pop().close(), 10.0)


@pytest.fixture
def echo_server(serve: Serve) -> Callable[..., Awaitable[Served]]:
    """``await echo_server(max_sessions=3, ...)``: an echo endpoint at ``/echo``."""

    async def go(**options: Any) -> Served:
        app = web.Application()
        options.setdefault("heartbeat_delay", 5.0)
        manager = add_endpoint(app, echo, prefix="/echo", name="echo", **options)
        return await serve(app, manager, "/echo")

    return go


@pytest.fixture
def cursor_server(serve: Serve) -> Callable[..., Awaitable[Served]]:
    """``await cursor_server(Settings(...), sndbuf=None)``: the real application at ``/ws``."""

    async def go(settings: Settings, *, sndbuf: int | None = None) -> Served:
        app = build_app(settings)
        return await serve(app, app[SOCKJS], "/ws", sndbuf=sndbuf)

    return go


Connect = Callable[..., Awaitable[SockJSClient]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect("xhr-polling", base_url, query="")``: an open client."""
    clients: list[SockJSClient] = []

    async def go(transport: str, base_url: str, query: str = "") -> SockJSClient:
        client = make_client(transport)
        clients.append(client)
        await client.connect(base_url, query=query, timeout=TIMEOUT)
        return client

    yield go
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 3.0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client (no connection limit) for raw requests."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
    ) as session:
        yield session


async def wait_until(
    predicate: Callable[[], bool], within: float = TIMEOUT, what: str = "condition"
) -> float:
    """Poll ``predicate`` until it holds; the seconds it took. AssertionError after ``within``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not met within {within}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def echo_round_trip(client: SockJSClient, text: str, within: float = TIMEOUT) -> None:
    """Send ``text`` and read until it comes back (what the echo endpoint does)."""
    await client.send(text)
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{client!r}: {text!r} not echoed within {within}s"
        if await client.recv(remaining) == text:
            return
