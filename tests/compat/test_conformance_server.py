"""`python -m cursorshare.sockjs.conformance`: the server outside suites are driven against.

It must serve the prefixes of the official sockjs-protocol.py (`/echo` with a 4096-byte
response limit, `/close`, `/disabled_websocket_echo`, `/cookie_needed_echo`) and those of
sockjs-client's own test server (tests/support/sockjs_app.js and sockjs_server.js at v1.6.1:
`/ticker`, `/amplify`, `/broadcast`, `/simple.txt`, `/streaming.txt`, `/slow-script.js`,
`/config.js`, the test pages), with the behaviour those files give them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cursorshare.sockjs.conformance import build_app
from tests.support.clients import SessionClosed, SockJSClient, make_client
from tests.support.server import free_port

TRANSPORTS = ("websocket", "xhr-streaming", "eventsource", "xhr-polling", "jsonp-polling")
SOCKJS_PREFIXES = (
    "/echo",
    "/close",
    "/disabled_websocket_echo",
    "/cookie_needed_echo",
    "/ticker",
    "/amplify",
    "/broadcast",
)

#: Where karma's browser suite finds the client: its proxy path, then tests/html/lib.
SUITE_SOCKJS_URL = "/sockjs-test/lib/sockjs.js"


@pytest.fixture
async def command(tmp_path: Path) -> AsyncIterator[str]:
    """The command running as outside suites start it; yields its base URL once it listens."""
    (tmp_path / "iframe.html").write_text("<p>a test page</p>")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cursorshare.sockjs.conformance",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--static",
        str(tmp_path),
        "--sockjs-url",
        SUITE_SOCKJS_URL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"http://127.0.0.1:{port}" in line.decode(), line
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(process.wait(), 10)


async def test_the_command_serves_every_prefix_and_file_of_both_suites(command: str) -> None:
    async with aiohttp.ClientSession() as http:
        for prefix in SOCKJS_PREFIXES:
            async with http.get(command + prefix) as r:
                assert r.status == 200, prefix
                assert await r.text() == "Welcome to SockJS!\n"
            async with http.get(command + prefix + "/info") as r:
                info = await r.json()
            assert info["websocket"] is (prefix != "/disabled_websocket_echo"), prefix
            assert info["cookie_needed"] is (prefix == "/cookie_needed_echo"), prefix

        async with http.get(command + "/simple.txt") as r:
            assert await r.text() == "a" * 2048 + "\nb\n"
            assert r.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(command + "/streaming.txt") as r:
            # The first part arrives before the rest is written.
            assert await r.content.readline() == b"a" * 2048 + b"\n"
            assert await r.content.read() == b"b\n"
        async with http.get(command + "/slow-script.js") as r:
            assert await r.text() == "var a = 1;\n"
        async with http.get(command + "/config.js") as r:
            text = await r.text()
        assert text.startswith("var clientOptions = ")
        options = json.loads(text.removeprefix("var clientOptions = ").rstrip(";"))
        assert options["url"] == command
        async with http.get(command + "/iframe.html") as r:
            assert await r.text() == "<p>a test page</p>"
        for prefix in SOCKJS_PREFIXES:
            async with http.get(command + prefix + "/iframe.html") as r:
                assert f'<script src="{SUITE_SOCKJS_URL}"></script>' in await r.text(), prefix
        async with http.get(command + "/wrong_url_indeed.txt") as r:
            assert r.status == 404
            assert await r.read() == b""  # the client's sender tests want no body at all


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    server = TestServer(build_app())
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[SockJSClient]]:
    opened: list[SockJSClient] = []
    yield opened
    for client in opened:
        await client.close()


async def _connect(clients: list[SockJSClient], transport: str, url: str) -> SockJSClient:
    client = make_client(transport)
    clients.append(client)
    await client.connect(url)
    return client


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_close_amplify_and_broadcast_behave_as_the_client_suite_expects(
    base_url: str, clients: list[SockJSClient], transport: str
) -> None:
    echo = await _connect(clients, transport, base_url + "/echo")
    await echo.send("%20 and 100%")
    assert await echo.recv() == "%20 and 100%"

    with pytest.raises(SessionClosed) as closed:
        closing = await _connect(clients, transport, base_url + "/close")
        await closing.recv()
    assert closed.value.closed_with == (3000, "Go away!")

    amplify = await _connect(clients, transport, base_url + "/amplify")
    for sent, expected in (("3", 8), ("18", 2**18), ("0", 2), ("x", 2), ("19", 2)):
        await amplify.send(sent)
        assert await amplify.recv() == "x" * expected

    first = await _connect(clients, transport, base_url + "/broadcast")
    second = await _connect(clients, "xhr-polling", base_url + "/broadcast")
    await first.send("to everyone")
    assert await first.recv() == "to everyone"
    assert await second.recv() == "to everyone"


async def test_ticker_ticks_until_the_session_closes(
    base_url: str, clients: list[SockJSClient]
) -> None:
    ticker = await _connect(clients, "websocket", base_url + "/ticker")
    assert await ticker.recv() == "tick!"
    assert await ticker.recv() == "tick!"


async def test_echo_streams_end_at_the_4096_byte_response_limit(
    base_url: str, clients: list[SockJSClient]
) -> None:
    async with aiohttp.ClientSession() as http:
        url = base_url + "/echo/000/limit"
        async with http.post(url + "/xhr_streaming") as stream:
            await stream.content.readline()  # prelude
            assert await stream.content.readline() == b"o\n"
            async with http.post(url + "/xhr_send", data=json.dumps(["x" * 4096])) as sent:
                assert sent.status == 204
            await stream.content.readline()
            assert await stream.content.read() == b""  # the response ended after the limit
