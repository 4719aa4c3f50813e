"""Graceful shutdown of the real command: `python -m cursorshare serve`, then SIGTERM or SIGINT.

Expected (docs/limits.md, "Shutdown"): every open session is closed with
``c[1001,"Server shutting down"]`` (3000 "Go away!" is accepted too), each receiving
connection gets that frame and then ends (the websocket closes, streams reach EOF, the pending
poll is answered), and the process exits with status 0 well within 10 seconds
(the shutdown timeout is 5 s).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import time

import aiohttp
import pytest

from tests.support.server import ServerProcess

from .conftest import TIMEOUT

EXIT_WITHIN = 10.0
CLOSE_FRAMES = ('c[1001,"Server shutting down"]', 'c[3000,"Go away!"]')


async def read_stream_to_eof(response: aiohttp.ClientResponse) -> list[str]:
    """Lines of a streaming response until the server ends it (bounded)."""
    lines = []
    while True:
        line = await asyncio.wait_for(response.content.readline(), TIMEOUT)
        if not line:
            return lines
        lines.append(line.decode().rstrip("\r\n"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_every_session_and_exits_0(sig: signal.Signals) -> None:
    server = ServerProcess.cursorshare()
    port = server.port
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    http = aiohttp.ClientSession(connector=connector)
    stall: socket.socket | None = None
    try:
        await server.astart()
        base = f"http://127.0.0.1:{port}/ws/000"
        query = "?v=2&room=bye"

        ws = await http.ws_connect(
            f"ws://127.0.0.1:{port}/ws/000/{secrets.token_hex(4)}/websocket{query}"
        )
        assert (await ws.receive(TIMEOUT)).data == "o"

        streaming = await http.post(f"{base}/{secrets.token_hex(4)}/xhr_streaming{query}")
        assert (await streaming.content.readline()).strip() == b"h" * 2048
        assert (await streaming.content.readline()).strip() == b"o"

        eventsource = await http.get(f"{base}/{secrets.token_hex(4)}/eventsource{query}")
        assert await eventsource.content.readline() == b"\r\n"
        assert (await eventsource.content.readline()).strip() == b"data: o"

        # A tutorial client: told nothing but moves, so its next poll waits at the server.
        polling = f"{base}/{secrets.token_hex(4)}/xhr?room=bye"
        async with http.post(polling) as response:
            assert await response.text() == "o\n"

        async def pending_poll() -> str:
            async with http.post(polling) as response:
                return await response.text()

        poll = asyncio.create_task(pending_poll())

        # A client that sent half a request head and went quiet must not hold the exit up.
        stall = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        stall.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")

        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert (await response.json())["sessions"] == 4
        await asyncio.sleep(0.3)  # let the second poll reach the server and wait there
        assert not poll.done()

        started = time.monotonic()
        server.send_signal(sig)

        frames = []
        async for message in ws:  # bounded: the server closes it
            if message.type is aiohttp.WSMsgType.TEXT:
                frames.append(message.data)
        assert ws.closed
        assert any(frame in CLOSE_FRAMES for frame in frames), frames
        streamed = await read_stream_to_eof(streaming)
        assert streamed and streamed[-1] in CLOSE_FRAMES, streamed
        events = await read_stream_to_eof(eventsource)
        assert any(line.removeprefix("data: ") in CLOSE_FRAMES for line in events), events
        answer = await asyncio.wait_for(poll, TIMEOUT)
        assert answer.rstrip("\n") in CLOSE_FRAMES, answer

        code = await server.await_exit(EXIT_WITHIN)
        elapsed = time.monotonic() - started
        assert code == 0, code
        assert elapsed < EXIT_WITHIN
        assert "Traceback" not in server.output(), server.output_tail()
    finally:
        if stall is not None:
            stall.close()
        server.kill()
        await http.close()
