"""Slow consumers: clients that stop reading must cost the server a bounded amount, and only them.

The real application (`build_app`) serves 50 v2 movers at 30 Hz in one room, plus two clients
that open a session and never read again: a websocket and an xhr-streaming request on raw
sockets with a tiny receive buffer. The server's listening socket has a small SO_SNDBUF too
(inherited by accepted sockets), otherwise the kernel autotunes the send buffer to megabytes
and the server would not notice anything for half a minute.

Expected (docs/limits.md, "Slow consumers"): once a slow member's backlog passes the hub's
``lag_bytes`` it gets a private coalescing batch (at most one pending event per member of the
room) instead of more bytes; after ``max_lag_seconds`` without catching up the hub calls
``overflow()`` and the session is closed with 3008 "Slow consumer". Meanwhile everyone else
keeps receiving the room's moves.

A behaviour check, not a timing test: it asserts delivery and bounds, not latency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from cursorshare.config import Settings
from cursorshare.server import CURSORS, HUB
from cursorshare.sockjs import Session, SessionState

from .conftest import TIMEOUT, Served, wait_until

MOVERS = 50
HZ = 30
ROOM = "slow"
#: SO_SNDBUF of the server's sockets and SO_RCVBUF of the slow clients' sockets.
SERVER_SNDBUF = 8192
CLIENT_RCVBUF = 4096
MAX_LAG_SECONDS = 2.0
#: After the 3008, how long the server may keep the dead session and its connection.
GONE_WITHIN = 10.0


@dataclass
class Mover:
    index: int
    ws: aiohttp.ClientWebSocketResponse
    sent: int = 0
    #: Per sender name: x of every move received from it, in arrival order.
    seen: dict[str, list[float]] = field(default_factory=dict)
    closed_with: object = None

    @property
    def name(self) -> str:
        return f"m{self.index}"

    async def read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            frame: str = message.data
            if frame.startswith("c"):
                self.closed_with = orjson.loads(frame[1:])
                break
            if not frame.startswith("a"):
                continue
            for text in orjson.loads(frame[1:]):
                event = orjson.loads(text)
                if event.get("type") == "move":
                    self.seen.setdefault(event["name"], []).append(event["x"])

    async def move(self, x: float) -> None:
        move = orjson.dumps({"type": "move", "x": x, "y": 0.5}).decode()
        await self.ws.send_str(orjson.dumps([move]).decode())
        self.sent += 1


def raw_slow_socket(port: int, request: bytes) -> socket.socket:
    """Connect with a tiny receive buffer, send ``request``, and never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    sock.setblocking(False)
    return sock


def slow_requests(session_ws: str, session_xs: str) -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    query = f"v=2&room={ROOM}&name=slow"
    websocket = (
        f"GET /ws/000/{session_ws}/websocket?{query} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    streaming = (
        f"POST /ws/000/{session_xs}/xhr_streaming?{query} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return websocket, streaming


def find_session(served: Served, session_id: str) -> Session | None:
    for session in served.manager.values():
        if session.id == session_id:
            return session
    return None


async def test_slow_consumers_are_cut_off_without_hurting_the_room(cursor_server) -> None:
    served: Served = await cursor_server(
        # No resume grace: the members cut off leave at once, for the room's count below.
        Settings(disconnect_delay=1.0, heartbeat_delay=5, tick_ms=30, resume_grace=0),
        sndbuf=SERVER_SNDBUF,
    )
    hub = served.app[HUB]
    hub.max_lag_seconds = MAX_LAG_SECONDS
    manager = served.manager
    connector = aiohttp.TCPConnector(limit=0)
    http = aiohttp.ClientSession(connector=connector)
    movers: list[Mover] = []
    readers: list[asyncio.Task[None]] = []
    slow_sockets: list[socket.socket] = []
    try:
        for i in range(MOVERS):
            url = served.ws_url(f"/000/m{i}x{secrets.token_hex(3)}/websocket")
            ws = await http.ws_connect(f"{url}?v=2&room={ROOM}&name=m{i}")
            mover = Mover(i, ws)
            movers.append(mover)
            readers.append(asyncio.create_task(mover.read()))
        await wait_until(lambda: len(served.app[CURSORS]) == MOVERS, what="movers joined")

        ws_id, xs_id = f"slowws{secrets.token_hex(3)}", f"slowxs{secrets.token_hex(3)}"
        for request in slow_requests(ws_id, xs_id):
            slow_sockets.append(raw_slow_socket(served.port, request))
        await wait_until(
            lambda: (
                find_session(served, ws_id) is not None and find_session(served, xs_id) is not None
            ),
            what="slow sessions opened",
        )
        slow = [find_session(served, ws_id), find_session(served, xs_id)]
        assert all(s is not None for s in slow)
        slow_sessions = [s for s in slow if s is not None]
        await wait_until(lambda: len(served.app[CURSORS]) == MOVERS + 2, what="slow ones joined")

        # Move at 30 Hz until both slow sessions are closed, then one more second.
        max_backlog = 0
        max_lag_batch = 0
        start = time.monotonic()
        closed_at: float | None = None
        tick = 0
        while True:
            now = time.monotonic()
            if closed_at is None and all(s.state is not SessionState.OPEN for s in slow_sessions):
                closed_at = now
            if closed_at is not None and now - closed_at > 1.0:
                break
            assert now - start < 4 * MAX_LAG_SECONDS + 10, (
                "slow consumers not closed in time: "
                f"{[(s.state.value, s.backlog, s.close_reason) for s in slow_sessions]}"
            )
            tick += 1
            await asyncio.gather(*(m.move(tick / 10_000) for m in movers))
            for session in slow_sessions:
                if session.state is SessionState.OPEN:
                    max_backlog = max(max_backlog, session.backlog)
            for lagging in list(hub._lagging.values()):
                max_lag_batch = max(max_lag_batch, len(lagging.batch))
            delay = start + tick / HZ - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

        # Everyone's final position, which coalescing must never drop.
        await asyncio.gather(*(m.move(1.0) for m in movers))
        names = {m.name for m in movers}

        def all_final_positions_seen() -> bool:
            return all(
                names <= m.seen.keys() and all(m.seen[n][-1] == 1.0 for n in names) for m in movers
            )

        await wait_until(all_final_positions_seen, 3 * TIMEOUT, what="final moves delivered")

        # The slow ones were closed by the hub's overflow, as slow consumers.
        for session in slow_sessions:
            assert session.close_reason == (3008, "Slow consumer"), session.close_reason
        assert manager.stats.closes[3008] == 2, manager.stats.closes
        assert hub.stats.overflows == 2
        # Bounded: the backlog stopped near lag_bytes (the hub stopped handing it bytes), far
        # below max_queue_bytes, and the private batches never outgrew the room.
        assert max_backlog <= hub.lag_bytes + 32 * 1024, max_backlog
        assert max_lag_batch <= 2 * (MOVERS + 2), max_lag_batch
        assert not hub._lagging, "lagging state kept for closed members"
        assert len(served.app[CURSORS]) == MOVERS
        assert len(hub.rooms[ROOM].members) == MOVERS

        # The room carried on: nobody else was closed, and every mover kept hearing from
        # every other mover, in order.
        assert set(manager.stats.closes) == {3008}, manager.stats.closes
        for mover in movers:
            assert mover.closed_with is None and not mover.ws.closed
            for name, xs in mover.seen.items():
                assert xs == sorted(xs), f"{mover.name} got {name}'s moves out of order"
                if name in names:
                    sent = next(m.sent for m in movers if m.name == name)
                    assert len(xs) >= sent // 4, (mover.name, name, len(xs), sent)

        # Closing a slow consumer must also free its connection: the session leaves the
        # manager (and max_sessions) instead of staying CLOSING behind a full socket.
        gone = {ws_id: "websocket", xs_id: "xhr_streaming"}
        try:
            await wait_until(
                lambda: all(find_session(served, sid) is None for sid in gone), GONE_WITHIN
            )
        except AssertionError:
            left = {
                gone[s.id]: (s.state.value, s.close_reason, s.backlog)
                for s in slow_sessions
                if find_session(served, s.id) is not None
            }
            raise AssertionError(
                f"{GONE_WITHIN}s after being closed as slow consumers these sessions are still "
                f"in the manager with their connections open: {left}"
            ) from None
    finally:
        for sock in slow_sockets:
            sock.close()
        for mover in movers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(mover.ws.close(), 2.0)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await http.close()
