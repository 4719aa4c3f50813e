"""Fixtures for the SockJS protocol conformance suite.

The suite follows the literate test suite `sockjs-protocol.py` (sockjs/sockjs-protocol, 0.3.x),
rewritten in pytest style, plus behaviours our issue asks for beyond it.

Endpoints served by the `server` fixture (one fresh aiohttp test server per test):

- `/echo`                    echo, response_limit=4096 (as in the spec), custom sockjs_url
- `/close`                   closes every session as soon as it opens (3000 "Go away!")
- `/disabled_websocket_echo` echo with the websocket transport disabled
- `/cookie_needed_echo`      echo with cookie_needed=True
- `/fast`                    recording echo with heartbeat_delay=0.3, disconnect_delay=0.5
- `/slow`                    recording echo with heartbeat_delay=25, disconnect_delay=5

On `/fast` and `/slow` the message `close-default` makes the app call `session.close()` and
`close-custom` makes it call `session.close(4001, "custom")`; anything else is echoed.
Every endpoint's handler records its events in the `recorder` fixture.

HTTP goes over raw asyncio streams (`fetch` for one request/response, `open_raw` for a
connection the test drives itself) so that paths, framing and chunk boundaries are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from cursorshare.sockjs import MsgType, Session, SockjsMessage, add_endpoint

#: Default time limit (seconds) for any single network read in the suite.
TIMEOUT = 5.0

CUSTOM_SOCKJS_URL = "/static/vendor/sockjs.min.js"

FAST_HEARTBEAT = 0.3
FAST_DISCONNECT = 0.5


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    endpoint: str
    session_id: str
    type: Any
    data: Any


class Recorder:
    """Collects handler events of every endpoint, in arrival order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, endpoint: str, msg: SockjsMessage, session: Session) -> None:
        self.events.append(Event(endpoint, session.id, msg.type, getattr(msg, "data", None)))

    def types(self, session_id: str, endpoint: str | None = None) -> list[Any]:
        return [
            e.type
            for e in self.events
            if e.session_id == session_id and (endpoint is None or e.endpoint == endpoint)
        ]

    def has(self, session_id: str, msg_type: Any, endpoint: str | None = None) -> bool:
        return msg_type in self.types(session_id, endpoint)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 3.0) -> float:
        """Wait until predicate() holds; return the seconds it took."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > within:
                raise AssertionError(f"condition not met within {within}s; events: {self.events!r}")
            await asyncio.sleep(0.01)
        return time.monotonic() - start


def _recording_echo(endpoint: str, recorder: Recorder, controls: bool) -> Callable[..., Any]:
    async def handler(msg: SockjsMessage, session: Session) -> None:
        recorder.add(endpoint, msg, session)
        if msg.type is MsgType.MESSAGE:
            if controls and msg.data == "close-default":
                session.close()
            elif controls and msg.data == "close-custom":
                session.close(4001, "custom")
            else:
                session.send(msg.data)

    return handler


def _closing(endpoint: str, recorder: Recorder) -> Callable[..., Any]:
    async def handler(msg: SockjsMessage, session: Session) -> None:
        recorder.add(endpoint, msg, session)
        if msg.type is MsgType.OPEN:
            session.close()

    return handler


def build_app(recorder: Recorder) -> tuple[web.Application, dict[str, Any]]:
    app = web.Application()
    managers = {
        "echo": add_endpoint(
            app,
            _recording_echo("echo", recorder, controls=False),
            prefix="/echo",
            name="echo",
            response_limit=4096,
            sockjs_url=CUSTOM_SOCKJS_URL,
        ),
        "close": add_endpoint(app, _closing("close", recorder), prefix="/close", name="close"),
        "wsoff": add_endpoint(
            app,
            _recording_echo("wsoff", recorder, controls=False),
            prefix="/disabled_websocket_echo",
            name="wsoff",
            disabled_transports=("websocket",),
        ),
        "cookie": add_endpoint(
            app,
            _recording_echo("cookie", recorder, controls=False),
            prefix="/cookie_needed_echo",
            name="cookie",
            cookie_needed=True,
        ),
        "fast": add_endpoint(
            app,
            _recording_echo("fast", recorder, controls=True),
            prefix="/fast",
            name="fast",
            heartbeat_delay=FAST_HEARTBEAT,
            disconnect_delay=FAST_DISCONNECT,
        ),
        "slow": add_endpoint(
            app,
            _recording_echo("slow", recorder, controls=True),
            prefix="/slow",
            name="slow",
            heartbeat_delay=25.0,
            disconnect_delay=5.0,
        ),
    }
    return app, managers


# --------------------------------------------------------------------------- raw HTTP


@dataclass
class Head:
    version: str
    status: int
    reason: str
    headers: CIMultiDict[str]


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def content_type(self) -> str | None:
        """The Content-Type header with spaces removed (the spec compares it that way)."""
        value = self.headers.get("Content-Type")
        return None if value is None else value.replace(" ", "")


class RawConnection:
    """One TCP connection to the test server, driven byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def send_request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
    ) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = body or b""
        hdrs = {"Host": self.host}
        hdrs.update(headers or {})
        lower = {k.lower() for k in hdrs}
        if (body or method in ("POST", "PUT")) and "content-length" not in lower:
            hdrs["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/{version}"]
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()

    async def read_head(self, within: float = TIMEOUT) -> Head:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        lines = raw.decode("latin-1").split("\r\n")
        proto, status, *reason = lines[0].split(" ", 2)
        assert proto.startswith("HTTP/"), lines[0]
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
        return Head(proto[5:], int(status), reason[0] if reason else "", headers)

    async def request_head(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
        within: float = TIMEOUT,
    ) -> Head:
        await self.send_request(method, path, headers, body, version)
        return await self.read_head(within)

    async def read_exact(self, n: int, within: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), within)

    async def read_chunk(self, within: float = TIMEOUT) -> bytes:
        """One chunk of a chunked body; b'' for the last (zero-size) chunk."""

        async def go() -> bytes:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b""
            data = await self.reader.readexactly(size)
            assert await self.reader.readexactly(2) == b"\r\n"
            return data

        return await asyncio.wait_for(go(), within)

    async def read_to_eof(self, within: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.read(), within)

    async def at_eof(self, within: float = TIMEOUT) -> bool:
        """True when the server closed the connection (reads nothing more)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), within)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def read_body(self, head: Head, method: str) -> bytes:
        if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
            return b""
        if head.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while chunk := await self.read_chunk():
                parts.append(chunk)
            return b"".join(parts)
        if "Content-Length" in head.headers:
            return await self.read_exact(int(head.headers["Content-Length"]))
        return await self.read_to_eof()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
        within: float = TIMEOUT,
    ) -> Response:
        head = await self.request_head(method, path, headers, body, version, within)
        data = await self.read_body(head, method)
        return Response(head.version, head.status, head.reason, head.headers, data)

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def app_and_managers(recorder: Recorder) -> tuple[web.Application, dict[str, Any]]:
    return build_app(recorder)


@pytest.fixture
def managers(app_and_managers: tuple[web.Application, dict[str, Any]]) -> dict[str, Any]:
    return app_and_managers[1]


@pytest.fixture
async def server(aiohttp_server: Any, app_and_managers: tuple[web.Application, dict[str, Any]]):
    app, _ = app_and_managers
    return await aiohttp_server(app)


@pytest.fixture
async def open_raw(server: Any) -> AsyncIterator[Callable[[], Awaitable[RawConnection]]]:
    conns: list[RawConnection] = []

    async def go() -> RawConnection:
        conn = await RawConnection.open(server.port)
        conns.append(conn)
        return conn

    yield go
    for conn in conns:
        await conn.close()


@pytest.fixture
async def fetch(open_raw: Callable[[], Awaitable[RawConnection]]):
    """One request on a fresh connection; returns the complete Response."""

    async def go(
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
        within: float = TIMEOUT,
    ) -> Response:
        conn = await open_raw()
        try:
            return await conn.request(method, path, headers, body, version, within)
        finally:
            await conn.close()

    return go


@pytest.fixture
async def ws_connect(server: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    session = aiohttp.ClientSession()
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def go(path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(server.make_url(path), **kwargs)
        sockets.append(ws)
        return ws

    yield go
    for ws in sockets:
        if not ws.closed:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(ws.close(), 1.0)
    await session.close()


@pytest.fixture
def sid() -> str:
    """A fresh session id."""
    return str(uuid.uuid4())


@pytest.fixture
def new_sid() -> Callable[[], str]:
    return lambda: str(uuid.uuid4())
