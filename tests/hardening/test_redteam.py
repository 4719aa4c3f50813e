"""Findings of the red-team pass after issue #10 (hostile input, identity, exhaustion).

Each test states one way in which a hostile client could hurt the server or other clients,
and checks that it no longer can. The servers run as `cursorshare serve` runs them
(`server.make_runner`, the guarded runner) on 127.0.0.1; every wait is for an event, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from cursorshare.config import Settings
from cursorshare.httpguard import GuardedAppRunner
from cursorshare.server import make_runner
from cursorshare.sockjs import add_endpoint

from .conftest import TIMEOUT, echo

Serve = Callable[[web.Application], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(app)``: the port of ``app`` served through the guarded runner."""
    runners: list[GuardedAppRunner] = []

    async def go(app: web.Application) -> int:
        runner = make_runner(app, Settings())
        runners.append(runner)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        return port

    yield go
    for runner in runners:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), 10.0)


def echo_app() -> web.Application:
    app = web.Application()
    add_endpoint(app, echo, prefix="/echo", name="echo")
    return app


async def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one ``Connection: close`` request; the answer's status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        "Connection: close",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- compressed request bodies ------------------------------------------------------------------
# Found by posting gzip bodies: aiohttp inflated every `Content-Encoding: gzip` body, even one no
# handler read (it drains the rest of a body after the answer, for up to 10 s): 10 requests of
# 200 KB of gzip cost the server 1.7 s of CPU (4 GB inflated), against nothing for the same
# bytes sent plain. No SockJS client compresses what it sends.


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_send_body_is_taken_as_sent_not_inflated(
    serve: Serve, encoding: str
) -> None:
    port = await serve(echo_app())
    status, body = await exchange(port, post("/echo/0/zip/xhr", b""))
    assert (status, body) == (200, b"o\n")
    payload = b'["inflated"]'
    packed = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
    status, body = await exchange(
        port, post("/echo/0/zip/xhr_send", packed, f"Content-Encoding: {encoding}")
    )
    # The bytes sent are not JSON: the spec's answer for a broken body, nothing delivered.
    assert (status, body) == (500, b"Broken JSON encoding.")
    status, body = await exchange(port, post("/echo/0/zip/xhr_send", b'["plain"]'))
    assert status == 204
    status, body = await exchange(port, post("/echo/0/zip/xhr", b""))
    assert (status, body) == (200, b'a["plain"]\n')
