"""HTTP-level bounds (issue #10, finding 5): unfinished requests, header sizes, connection caps.

Expected (docs/limits.md, "HTTP requests and connections"):

- a request head must be complete within ``header_timeout`` of the connection being accepted
  (or of its first byte, on a kept-alive connection): a client that has sent part of one gets
  ``408`` and the connection closes; one that sent nothing is closed without an answer;
- a body must be complete within ``body_timeout`` of its head: the request is answered ``408``;
- a head over ``max_header_bytes`` is refused ``431``, finished or not, so an unfinished request
  costs at most that much; more than ``max_headers`` header lines or a line over
  ``max_header_line`` bytes are aiohttp's ``400``;
- past ``max_connections`` open connections, or ``max_connections_per_address`` from one
  address, a new connection is answered ``503`` and closed at once;
- requests whose head and body are in (streams, polls, websockets) are never cut.

The servers run the way `cursorshare serve` runs them: `server.make_runner` (the guarded
runner) on 127.0.0.1 with tight bounds. Every wait is for an event, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from cursorshare.config import Settings
from cursorshare.httpguard import ConnectionGuard, GuardedAppRunner
from cursorshare.server import build_app, make_runner
from cursorshare.sockjs import add_endpoint

from .conftest import TIMEOUT, Connect, echo, echo_round_trip, wait_until

FAST = Settings(header_timeout=0.5, body_timeout=0.5)


@dataclass
class Running:
    runner: GuardedAppRunner
    port: int

    @property
    def guard(self) -> ConnectionGuard:
        return self.runner.guard

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``await start(settings, app=None)``: serve ``app`` (default: the cursor app) guarded."""
    runners: list[GuardedAppRunner] = []

    async def go(settings: Settings, app: web.Application | None = None) -> Running:
        runner = make_runner(app or build_app(settings), settings)
        runners.append(runner)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return Running(runner, runner.addresses[0][1])

    yield go
    for runner in runners:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), 10.0)


def echo_app() -> web.Application:
    app = web.Application()
    add_endpoint(app, echo, prefix="/echo", name="echo", heartbeat_delay=25.0)
    return app


class Raw:
    """One raw TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, local_address: str | None = None) -> Raw:
        local = (local_address, 0) if local_address else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_to_eof(self, within: float = TIMEOUT) -> bytes:
        """Everything the server sends until it closes (AssertionError if it does not)."""
        try:
            return await asyncio.wait_for(self.reader.read(), within)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {within}s") from None

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[..., Awaitable[Raw]]]:
    opened: list[Raw] = []

    async def go(port: int, local_address: str | None = None) -> Raw:
        connection = await Raw.open(port, local_address)
        opened.append(connection)
        return connection

    yield go
    for connection in opened:
        connection.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:80]
    return int(answer.split(b" ", 2)[1])


GET = b"GET /healthz HTTP/1.1\r\nHost: test\r\n"


async def test_slowloris_connections_are_answered_408_and_closed_by_the_header_deadline(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    served = await start(FAST)
    trickles = [await raw(served.port) for _ in range(50)]
    for connection in trickles:
        await connection.send(GET)  # the head's blank line never comes
    answers = await asyncio.gather(*(c.read_to_eof() for c in trickles))
    assert {status_of(a) for a in answers} == {408}
    await wait_until(lambda: served.guard.open == 0, what="every connection released")
    # A complete request on a fresh connection is still served.
    fresh = await raw(served.port)
    await fresh.send(GET + b"Connection: close\r\n\r\n")
    assert status_of(await fresh.read_to_eof()) == 200


async def test_a_trickle_after_a_kept_alive_request_meets_the_same_deadline(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    served = await start(FAST)
    connection = await raw(served.port)
    await connection.send(GET + b"\r\n")
    first = await asyncio.wait_for(connection.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert status_of(first) == 200
    await connection.send(b"GET /healthz HT")  # the next request starts and stalls
    answer = await connection.read_to_eof()
    assert b"HTTP/1.1 408 Request Timeout" in answer


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    served = await start(FAST)
    silent = await raw(served.port)
    assert await silent.read_to_eof() == b""


async def test_a_slow_send_body_is_answered_408_and_the_session_lives_on(
    start: Start, raw: Callable[..., Awaitable[Raw]], connect: Connect
) -> None:
    served = await start(FAST, echo_app())
    client = await connect("xhr-polling", served.origin + "/echo")
    path = client.session_url.removeprefix(served.origin).encode()
    slow = await raw(served.port)
    await slow.send(
        b"POST " + path + b'/xhr_send HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\n["ha'
    )
    answer = await slow.read_to_eof()
    assert status_of(answer) == 408
    assert answer.endswith(b"Request body not received in time.")
    await echo_round_trip(client, "still here")


@pytest.mark.parametrize("finished", [True, False], ids=["whole-head", "unfinished-head"])
async def test_a_head_over_max_header_bytes_is_refused_431(
    start: Start, raw: Callable[..., Awaitable[Raw]], finished: bool
) -> None:
    settings = Settings(max_header_bytes=4096)
    served = await start(settings)
    head = GET + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 500) for i in range(10))
    connection = await raw(served.port)
    await connection.send(head + (b"\r\n" if finished else b""))
    answer = await connection.read_to_eof()
    assert status_of(answer) == 431
    assert answer.endswith(b"Request header fields too large.")


async def test_unfinished_heads_are_refused_once_they_reach_the_bound(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    """What one unfinished request can make the server hold is ``max_header_bytes``."""
    served = await start(Settings(max_header_bytes=8192, header_timeout=60))
    connection = await raw(served.port)
    await connection.send(GET)
    sent = len(GET)
    line = b"X-Filler: " + b"a" * 990 + b"\r\n"
    with contextlib.suppress(ConnectionError):
        while sent <= 8192 + len(line):  # the server must answer before this loop ends
            await connection.send(line)
            sent += len(line)
    assert status_of(await connection.read_to_eof()) == 431


@pytest.mark.parametrize(
    ("settings", "extra"),
    [
        (Settings(max_headers=20), b"".join(b"X-%d: a\r\n" % i for i in range(30))),
        (Settings(max_header_line=1024), b"X-Long: " + b"a" * 2000 + b"\r\n"),
    ],
    ids=["too-many-headers", "header-line-too-long"],
)
async def test_aiohttp_bounds_on_header_count_and_line_are_settings(
    start: Start, raw: Callable[..., Awaitable[Raw]], settings: Settings, extra: bytes
) -> None:
    served = await start(settings)
    connection = await raw(served.port)
    await connection.send(GET + extra + b"\r\n")
    assert status_of(await connection.read_to_eof()) == 400
    within = await raw(served.port)
    await within.send(GET + b"Connection: close\r\n\r\n")
    assert status_of(await within.read_to_eof()) == 200


async def test_connections_over_the_overall_cap_get_503_and_are_closed(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    served = await start(Settings(max_connections=3, header_timeout=60))
    held = [await raw(served.port) for _ in range(3)]
    await wait_until(lambda: served.guard.open == 3, what="three connections counted")
    refused = await raw(served.port)
    answer = await refused.read_to_eof()
    assert status_of(answer) == 503
    assert b"Retry-After: 5" in answer
    assert served.guard.open == 3
    held.pop().close()
    await wait_until(lambda: served.guard.open == 2, what="a closed connection released")
    again = await raw(served.port)
    await again.send(GET + b"Connection: close\r\n\r\n")
    assert status_of(await again.read_to_eof()) == 200


async def test_connections_over_the_per_address_cap_get_503_other_addresses_do_not(
    start: Start, raw: Callable[..., Awaitable[Raw]]
) -> None:
    served = await start(Settings(max_connections_per_address=2, header_timeout=60))
    for _ in range(2):
        await raw(served.port, "127.0.0.1")
    await wait_until(lambda: served.guard.open == 2, what="two connections counted")
    assert status_of(await (await raw(served.port, "127.0.0.1")).read_to_eof()) == 503
    other = await raw(served.port, "127.0.0.2")  # another address has its own allowance
    await other.send(GET + b"Connection: close\r\n\r\n")
    assert status_of(await other.read_to_eof()) == 200
    assert served.guard.by_address == {"127.0.0.1": 2}


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "eventsource"])
async def test_long_lived_receiving_requests_outlive_every_deadline(
    start: Start, raw: Callable[..., Awaitable[Raw]], connect: Connect, transport: str
) -> None:
    served = await start(FAST, echo_app())
    client = await connect(transport, served.origin + "/echo")
    await echo_round_trip(client, "before")
    # A slowloris opened after the stream is closed by the header deadline: by then the
    # stream's own connection has been open longer than both deadlines.
    late = await raw(served.port)
    await late.send(GET)
    assert status_of(await late.read_to_eof()) == 408
    await echo_round_trip(client, "after")
    assert not client.ended


async def test_a_pending_poll_outlives_the_deadlines(
    start: Start, raw: Callable[..., Awaitable[Raw]], http: aiohttp.ClientSession
) -> None:
    served = await start(FAST, echo_app())
    session = served.origin + "/echo/000/pendingpoll"
    async with http.post(session + "/xhr") as opened:
        assert await opened.text() == "o\n"
    poll = asyncio.ensure_future(http.post(session + "/xhr"))
    await wait_until(lambda: served.guard.open >= 1, what="the poll connected")
    late = await raw(served.port)
    await late.send(GET)
    assert status_of(await late.read_to_eof()) == 408
    assert not poll.done()
    async with http.post(session + "/xhr_send", data=b'["answer"]') as sent:
        assert sent.status == 204
    response = await asyncio.wait_for(poll, TIMEOUT)
    assert response.status == 200
    assert await response.text() == 'a["answer"]\n'
    response.release()


def test_loopback_aliases_are_usable() -> None:
    """The per-address test connects from 127.0.0.2, which Linux routes to loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
