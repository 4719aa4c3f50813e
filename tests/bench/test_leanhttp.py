"""The load generator's lean HTTP client (cursorshare/bench/leanhttp.py) against a real aiohttp
server (pytest-aiohttp's ``aiohttp_server``), and the SockJS clients that use it.

The server counts the requests of each connection (by its transport), so reuse is asserted
from the server's side. Long responses wait for the test (an event), never for time, so a body
really reaches the client in several reads. Statuses as the SockJS protocol gives them
(sockjs-protocol 0.3.3: ``xhr_send`` answers 204, an unknown session 404).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cursorshare.bench.clients import SessionClosed, SockJSClient, Tally
from cursorshare.bench.leanhttp import ConnectionDropped, HttpPool
from cursorshare.bench.transports import EventSourceClient, XhrPollingClient, XhrStreamingClient

WITHIN = 10.0  # upper bound on any wait for an event


@dataclass
class Served:
    """What the test server saw, and how the test steers it."""

    requests_per_connection: dict[Any, int] = field(default_factory=dict)
    sends: list[bytes] = field(default_factory=list)
    # Close the connection without answering: the first request on a reused connection
    # (what a client sees when the server closed an idle keep-alive connection), or every send.
    drop_reused_once: bool = False
    drop_every_send: bool = False
    attempts: int = 0
    # Set by the test when the client has read the first part of a long response.
    go_on: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, request: web.Request) -> int:
        n = self.requests_per_connection.get(request.transport, 0) + 1
        self.requests_per_connection[request.transport] = n
        return n


async def _hang_up(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    await asyncio.Future()  # cancelled by the server once the connection is gone
    raise AssertionError("unreachable")


def _app(served: Served) -> web.Application:
    async def length(request: web.Request) -> web.Response:
        served.count(request)
        return web.Response(body=b"hello, keep-alive")

    async def chunked(request: web.Request) -> web.StreamResponse:
        served.count(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"one ", b"two ", b"three"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def closing(request: web.Request) -> web.Response:
        served.count(request)
        return web.Response(body=b"bye", headers={"Connection": "close"})

    async def split(request: web.Request) -> web.StreamResponse:
        served.count(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"first half|")
        await asyncio.wait_for(served.go_on.wait(), WITHIN)
        await resp.write(b"second half")
        await resp.write_eof()
        return resp

    async def xhr_send(request: web.Request) -> web.StreamResponse:
        n = served.count(request)
        served.attempts += 1
        if served.drop_every_send or (served.drop_reused_once and n > 1):
            served.drop_reused_once = False
            return await _hang_up(request)
        served.sends.append(await request.read())
        return web.Response(status=204)

    async def not_found(request: web.Request) -> web.Response:
        served.count(request)
        return web.Response(status=404, text="session not found")

    async def stream(request: web.Request) -> web.StreamResponse:
        """A SockJS stream whose one message frame is cut in two reads, then a close frame."""
        served.count(request)
        sse = request.path.endswith("/eventsource")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def framed(frame: bytes) -> bytes:
            return b"data: " + frame + b"\r\n\r\n" if sse else frame + b"\n"

        prelude = b"\r\n" if sse else b"h" * 2048 + b"\n"
        message = framed(b'a["{\\"sender\\":1,\\"x\\":2}"]')
        cut = len(message) // 2
        await resp.write(prelude + framed(b"o") + message[:cut])
        await asyncio.wait_for(served.go_on.wait(), WITHIN)
        await resp.write(message[cut:] + framed(b'c[3000,"Go away!"]'))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/length", length)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/closing", closing)
    app.router.add_get("/split", split)
    app.router.add_post("/ws/{server}/{session}/xhr_send", xhr_send)
    app.router.add_post("/gone/{server}/{session}/xhr_send", not_found)
    app.router.add_post("/gone/{server}/{session}/xhr", not_found)
    app.router.add_post("/ws/{server}/{session}/xhr_streaming", stream)
    app.router.add_get("/ws/{server}/{session}/eventsource", stream)
    return app


@pytest.fixture
async def served(aiohttp_server: Any) -> AsyncIterator[tuple[Served, str]]:
    state = Served()
    server = await aiohttp_server(_app(state))
    yield state, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def pool(served: tuple[Served, str]) -> AsyncIterator[HttpPool]:
    async with HttpPool(served[1]) as p:
        yield p


async def test_content_length_body(served: tuple[Served, str], pool: HttpPool) -> None:
    _, url = served
    assert await pool.request(pool.encode("GET", url + "/length")) == (200, b"hello, keep-alive")


async def test_chunked_body(served: tuple[Served, str], pool: HttpPool) -> None:
    _, url = served
    assert await pool.request(pool.encode("GET", url + "/chunked")) == (200, b"one two three")


async def test_long_response_split_across_reads_reaches_the_sink_in_order(
    served: tuple[Served, str], pool: HttpPool
) -> None:
    state, url = served
    chunks: list[bytes] = []

    def sink(chunk: bytes) -> bool:
        chunks.append(chunk)
        if b"|" in chunk:
            state.go_on.set()  # the first part arrived before the second was written
        return True

    status, body = await asyncio.wait_for(
        pool.request(pool.encode("GET", url + "/split"), sink, long=True), WITHIN
    )
    assert (status, body) == (200, b"")
    assert b"".join(chunks) == b"first half|second half"
    assert len(chunks) >= 2


async def test_keep_alive_connection_is_reused(served: tuple[Served, str], pool: HttpPool) -> None:
    state, url = served
    for path in ("/length", "/chunked", "/length"):
        status, _ = await pool.request(pool.encode("GET", url + path))
        assert status == 200
    assert pool.opened == 1
    assert list(state.requests_per_connection.values()) == [3]


async def test_prewarmed_connections_serve_the_next_requests(
    served: tuple[Served, str], pool: HttpPool
) -> None:
    state, url = served
    await pool.prewarm(3, concurrency=2)
    assert (pool.opened, len(pool.idle)) == (3, 3)
    request = pool.encode("GET", url + "/length")
    answers = await asyncio.gather(*(pool.request(request) for _ in range(3)))
    assert answers == [(200, b"hello, keep-alive")] * 3
    assert pool.opened == 3  # no connection opened under load
    assert sorted(state.requests_per_connection.values()) == [1, 1, 1]


async def test_connection_close_is_honoured(served: tuple[Served, str], pool: HttpPool) -> None:
    state, url = served
    assert await pool.request(pool.encode("GET", url + "/closing")) == (200, b"bye")
    assert await pool.request(pool.encode("GET", url + "/length")) == (200, b"hello, keep-alive")
    assert pool.opened == 2
    assert sorted(state.requests_per_connection.values()) == [1, 1]


async def test_a_sink_that_stops_gives_the_connection_up(
    served: tuple[Served, str], pool: HttpPool
) -> None:
    state, url = served
    status, _ = await pool.request(pool.encode("GET", url + "/split"), lambda _: False, long=True)
    assert status == 200
    state.go_on.set()
    # The rest of that response is still on its connection: the next request needs another.
    assert await pool.request(pool.encode("GET", url + "/length")) == (200, b"hello, keep-alive")
    assert pool.opened == 2


async def test_a_sink_error_fails_the_request_with_that_error(
    served: tuple[Served, str], pool: HttpPool
) -> None:
    _, url = served

    def sink(chunk: bytes) -> bool:
        raise ValueError(f"bad frame {chunk[:5]!r}")

    with pytest.raises(ValueError, match="bad frame b'first'"):
        await pool.request(pool.encode("GET", url + "/split"), sink, long=True)


def _client(
    cls: type[SockJSClient], http: aiohttp.ClientSession, pool: HttpPool, base: str
) -> SockJSClient:
    return cls(http, pool, base, 0, Tally(), n_senders=1, observer=False, deadline=math.inf)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:  # the websocket transport's; unused here
        yield session


async def test_send_on_a_connection_the_server_closed_is_retried_once(
    served: tuple[Served, str], pool: HttpPool, http: aiohttp.ClientSession
) -> None:
    state, url = served
    client = _client(XhrPollingClient, http, pool, url + "/ws")
    await client._send('["first"]')
    state.drop_reused_once = True
    await client._send('["second"]')
    assert state.sends == [b'["first"]', b'["second"]']
    assert client.tally.resends == 1
    assert state.attempts == 3
    assert pool.opened == 2


async def test_a_send_is_retried_only_once(
    served: tuple[Served, str], pool: HttpPool, http: aiohttp.ClientSession
) -> None:
    state, url = served
    client = _client(XhrPollingClient, http, pool, url + "/ws")
    state.drop_every_send = True
    with pytest.raises(ConnectionDropped):
        await client._send('["lost"]')
    assert state.attempts == 2
    assert client.tally.resends == 1
    assert state.sends == []


async def test_send_404_closes_the_session(
    served: tuple[Served, str], pool: HttpPool, http: aiohttp.ClientSession
) -> None:
    _, url = served
    client = _client(XhrPollingClient, http, pool, url + "/gone")
    with pytest.raises(SessionClosed, match="session not found"):
        await client._send('["x"]')
    assert client.closed


async def test_poll_404_fails_the_open(
    served: tuple[Served, str], pool: HttpPool, http: aiohttp.ClientSession
) -> None:
    _, url = served
    client = _client(XhrPollingClient, http, pool, url + "/gone")
    with pytest.raises(SessionClosed, match="session not found"):
        await client.open(within=WITHIN)
    assert client.closed


@pytest.mark.parametrize("cls", [XhrStreamingClient, EventSourceClient])
async def test_stream_frame_cut_across_reads_is_counted_once(
    served: tuple[Served, str],
    pool: HttpPool,
    http: aiohttp.ClientSession,
    cls: type[SockJSClient],
) -> None:
    state, url = served
    client = _client(cls, http, pool, url + "/ws")
    await client.open(within=WITHIN)  # the `o` frame arrived; half a message is pending
    state.go_on.set()
    task = client._task
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), WITHIN)  # the `c` frame ends the session
    assert client.close_reason == '[3000,"Go away!"]'
    assert client.tally.frames == 1
    assert client.tally.arrivals == 1
    # A close frame in the middle of a run is booked as the run's error, as before.
    assert client.tally.errors == 1
    assert "Go away!" in client.tally.last_error
    assert client.tally.reopens == 0
    await client.close()
