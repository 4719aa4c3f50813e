"""Every websocket frame costs its sender (issue #10, finding 4).

Empty text and binary frames, `[]`, pings, pongs and fragments carry no message, yet each
costs the server a parse: they are charged to the session's budget like messages, and a
connection flooding any of them is closed with 3009 ("Rate limit exceeded") while a
neighbour keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.sockjs.wsframes import BINARY, CONTINUATION, PING, PONG, TEXT, RawWebSocket, client_frame

from .conftest import TIMEOUT, Connect, echo_round_trip

RATE = 20  # messages (and frames) per second: a flood passes the abuse rule within a second

FLOODS = {
    "empty-text": [client_frame(TEXT)],
    "empty-binary": [client_frame(BINARY)],
    "empty-array": [client_frame(TEXT, b"[]")],
    "ping": [client_frame(PING)],
    "pong": [client_frame(PONG)],
    # A message started and never finished, fed empty fragments: aiohttp assembles them
    # without ever handing anything to the application.
    "continuation": [client_frame(CONTINUATION, fin=False)],
}


async def _flood(ws: RawWebSocket, frames: list[bytes], opener: bytes = b"") -> None:
    """Write ``frames`` as fast as the socket takes them until the server stops reading."""
    batch = b"".join(frames) * 500
    ws.writer.write(opener)
    deadline = time.monotonic() + TIMEOUT
    with contextlib.suppress(ConnectionError):
        while time.monotonic() < deadline and not ws.writer.is_closing():
            ws.writer.write(batch)
            await ws.writer.drain()


@pytest.mark.parametrize("kind", list(FLOODS))
@pytest.mark.parametrize("endpoint", ["framed", "raw"])
async def test_frame_flood_closes_the_flooder_with_3009_and_spares_its_neighbour(
    echo_server, connect: Connect, kind: str, endpoint: str
) -> None:
    # A failed flooder's socket is held unread until websocket_close_timeout: keep it short.
    served = await echo_server(max_messages_per_second=RATE, websocket_close_timeout=0.5)
    neighbour = await connect("websocket", served.base_url)
    path = "/echo/000/flooder/websocket" if endpoint == "framed" else "/echo/websocket"
    ws = await RawWebSocket.open(served.port, path)
    try:
        if endpoint == "framed":
            assert (await ws.recv()).text == "o"
        # A fragmented message must start with a non-final text frame.
        opener = client_frame(TEXT, b"[", fin=False) if kind == "continuation" else b""
        flood = asyncio.ensure_future(_flood(ws, FLOODS[kind], opener))
        try:
            frames, close = await ws.recv_until_close(within=TIMEOUT)
        finally:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await flood
        texts = [f.text for f in frames if f.payload not in (b"o", b"h")]
        if endpoint == "framed":
            assert texts == ['c[3009,"Rate limit exceeded"]'], texts
        assert close.close_code == 3009
        assert close.payload[2:] == b"Rate limit exceeded"
        assert await ws.at_eof(), "a flooder is not waited for: the server shuts it down"
        assert len(served.manager) == 1, "the flooder's session is forgotten at once"
    finally:
        await ws.close()
    stats = served.manager.stats
    assert stats.closes[3009] == 1
    if kind not in ("empty-text", "empty-binary", "empty-array") or endpoint == "framed":
        assert stats.frames_charged > RATE, stats
    await echo_round_trip(neighbour, f"neighbour unaffected by a {kind} flood")


async def test_a_few_pings_and_empty_frames_cost_nothing_visible(
    echo_server, connect: Connect
) -> None:
    # Within the budget, frames without messages change nothing: the echo still works.
    served = await echo_server(max_messages_per_second=RATE)
    ws = await RawWebSocket.open(served.port, "/echo/000/polite/websocket")
    try:
        assert (await ws.recv()).text == "o"
        for opcode, payload in [(PING, b"p"), (PONG, b""), (TEXT, b""), (TEXT, b"[]")]:
            await ws.send(opcode, payload)
        pong = await ws.recv()
        assert (pong.opcode, pong.payload) == (PONG, b"p"), "pings are answered"
        await ws.send(TEXT, b'["a"]', fin=False)
        await ws.send(CONTINUATION, b"")
        await ws.send(CONTINUATION, b"", fin=True)
        assert (await ws.recv()).text == 'a["a"]', "a fragmented message is assembled"
    finally:
        await ws.close()
    assert served.manager.stats.frames_charged == 5  # ping, pong, 2 empty, 1 non-final
    assert served.manager.stats.closes[3009] == 0


async def test_data_before_the_handshake_is_refused(echo_server) -> None:
    # RFC 6455 §4.1: the client waits for the server's answer before sending frames. Bytes
    # sent earlier could hide frames from the budget, so the upgrade is refused.
    served = await echo_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(
            b"GET /echo/000/early/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n" + client_frame(PING) * 3
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 400"), head
    finally:
        writer.close()
    assert len(served.manager) == 0


@pytest.mark.parametrize("path", ["/echo/000/unmasked/websocket", "/echo/websocket"])
async def test_an_unmasked_client_frame_fails_the_connection_with_1002(
    echo_server, connect: Connect, path: str
) -> None:
    # RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame that is not
    # masked" (§7.4.1: 1002, protocol error). aiohttp's parser accepts such frames.
    served = await echo_server()
    neighbour = await connect("websocket", served.base_url)
    ws = await RawWebSocket.open(served.port, path)
    try:
        if path.endswith("/unmasked/websocket"):
            assert (await ws.recv()).text == "o"
        ws.writer.write(bytes((0x81, 5)) + b'["a"]')  # FIN + text, no mask bit
        _, close = await ws.recv_until_close()
        assert close.close_code == 1002
        assert await ws.at_eof()
    finally:
        await ws.close()
    await echo_round_trip(neighbour, "the neighbour is still served")
