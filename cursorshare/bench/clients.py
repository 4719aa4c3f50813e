"""The raw SockJS wire-protocol client's common part; one subclass per transport lives in
``transports.py``.

A client is one SockJS session in one room. It knows the framing of its transport and nothing
else: every ``a[...]`` frame it receives goes to :meth:`SockJSClient._account`, which updates
the process's shared :class:`Tally` (arrival count, latency histograms) and the client's own
``last_seen`` table (the highest sequence number received from each sender of its room, for
coverage).

Rooms: with ``rooms = K``, client ``i`` is in room ``i % K`` (named ``r<i % K>`` in the session
URL's ``room`` query parameter) and is member number ``i // K`` of it, so a move's ``c`` field
says which room it belongs to; a move from another room is booked as a cross-room error.

Moves are queued with :meth:`SockJSClient.move` (never blocks); one flush task per client sends
whatever is pending as one SockJS send (a JSON array of strings), as sockjs-client does: over
HTTP one send in flight, then a pause of ``send_wait`` (its 25 ms) during which moves wait for
the next; over a websocket the next batch as soon as the previous frame is written.

HTTP requests go through the generator process's :class:`~cursorshare.bench.leanhttp.HttpPool`
(a lean keep-alive client); only the websocket transport uses aiohttp's ``ClientSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import orjson

from .stats import (
    FINE_BUCKETS,
    FINE_PER_MS,
    ROOM_BUCKETS,
    Tally,
    bucket_of,
    room_bucket_of,
)

if TYPE_CHECKING:  # leanhttp needs httptools (the bench extra): imported when a pool is made
    from .leanhttp import HttpPool

__all__ = ["SOCKJS_CLIENT_SEND_WAIT_MS", "SessionClosed", "SockJSClient", "Tally", "room_name"]

_loads = orjson.loads
_perf_counter = time.perf_counter

SEND_CONTENT_TYPE = "text/plain;charset=UTF-8"
# sockjs-client's pause after an HTTP send (lib/transport/lib/buffered-sender.js).
SOCKJS_CLIENT_SEND_WAIT_MS = 25.0
# The websocket receive loop, when it never had to wait, yields to the event loop after this
# many frames, so one client drowning in a burst cannot stall the send scheduler for long. (The
# HTTP transports parse in the connection's data_received, which returns to the loop per read.)
YIELD_EVERY = 32

# A cursor path: 64 points on an ellipse, in page pixels. Each client starts at its own offset.
_PATH: list[tuple[int, int]] = [
    (500 + int(400 * math.cos(a)), 400 + int(300 * math.sin(a)))
    for a in (2 * math.pi * i / 64 for i in range(64))
]


class SessionClosed(Exception):
    """The server closed the SockJS session (a ``c[code,reason]`` frame or a 404)."""


def room_name(room: int) -> str:
    """The ``room`` query value of room number ``room`` (valid for both servers)."""
    return f"r{room}"


def _random_session() -> tuple[str, str]:
    rnd = random.getrandbits(64)
    return f"{rnd % 1000:03d}", f"{rnd:016x}"


class SockJSClient:
    """One SockJS session over one transport. Subclasses implement ``_run`` and ``_send``."""

    transport: ClassVar[str] = ""
    # Whether sends pause for ``send_wait`` after each one (sockjs-client's HTTP senders do).
    buffered_sender: ClassVar[bool] = True
    # The string that occurs once per broadcast message inside a frame, as the transport
    # delivers it (the JSON-escaped key of the field the server adds).
    _NEEDLE_STR: ClassVar[str] = '\\"sender\\"'
    _NEEDLE_BYTES: ClassVar[bytes] = b'\\"sender\\"'

    def __init__(
        self,
        http: aiohttp.ClientSession,
        pool: HttpPool,
        base_url: str,
        index: int,
        tally: Tally,
        *,
        n_senders: int = 0,
        rooms: int = 1,
        observer: bool = True,
        deadline: float = math.inf,
        send_wait: float = SOCKJS_CLIENT_SEND_WAIT_MS / 1000.0,
    ) -> None:
        self.http = http
        self.pool = pool
        self.index = index
        self.tally = tally
        self.rooms = max(1, rooms)
        self.room = index % self.rooms
        self.n_senders = n_senders
        server, session = _random_session()
        self.session_url = f"{base_url.rstrip('/')}/{server}/{session}"
        # Appended to every request URL, after the transport's path, as sockjs-client does.
        self.query = f"?room={room_name(self.room)}" if self.rooms > 1 else ""
        # The xhr_send request up to its Content-Length value, encoded once.
        self._send_head = b""
        # Highest sequence number received per member of the room (sender ``c`` is member
        # ``c // rooms``); None for a counting-only client.
        members = -(-n_senders // self.rooms)
        self.last_seen: list[int] | None = [-1] * members if observer else None
        self.room_hist: list[int] | None = None
        if observer:
            self.room_hist = tally.room_hist.setdefault(self.room, [0] * ROOM_BUCKETS)
        self.deadline = deadline  # perf_counter() time after which every loop gives up
        self.send_wait = send_wait if self.buffered_sender else 0.0
        self.seq = 0  # sequence number of the next move
        self.pending: list[str] = []
        self.sending = False
        self.opened = False
        self.closed = False
        self.close_reason = ""
        self._opened: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._tail = f',\\"c\\":{index}}}"'
        self._path_offset = (index * 7) & 63

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self, within: float = 10.0) -> None:
        """Open the session; returns once the server's ``o`` frame arrived."""
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._task = loop.create_task(self._run_guarded())
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), within)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop receiving and sending. Websocket sessions are closed; HTTP ones are abandoned."""
        self.closed = True
        for task in (self._flush_task, self._task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._flush_task = None
        self._task = None

    async def _run_guarded(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closed:
                self.tally.error(f"{self.transport} receive: {exc!r}")
            self._fail_open(exc)
        else:
            self._fail_open(SessionClosed(self.close_reason or "session ended before open"))
        finally:
            self.closed = True

    def _fail_open(self, exc: BaseException) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(exc)
            self._opened.exception()  # mark retrieved: the waiter may have timed out already

    async def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- sending -------------------------------------------------------------------------

    def move(self, now_ms: float) -> None:
        """Queue the next move, stamped ``now_ms``; a flush task sends it."""
        s = self.seq
        self.seq = s + 1
        x, y = _PATH[(s + self._path_offset) & 63]
        # The move, JSON-encoded as a string inside the send array: "{\"x\":..,...}"
        self.pending.append(
            f'"{{\\"x\\":{x},\\"y\\":{y},\\"t\\":{now_ms:.3f},\\"s\\":{s}' + self._tail
        )
        if not self.sending and not self.closed:
            self.sending = True
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self.pending and not self.closed:
                batch = self.pending
                self.pending = []
                await self._send("[" + ",".join(batch) + "]")
                if self.send_wait:
                    await self._pause()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closed:
                self.tally.error(f"{self.transport} send: {exc!r}")
        finally:
            self.sending = False

    async def _pause(self) -> None:
        """sockjs-client's wait after a send; the moves made meanwhile go out together."""
        await asyncio.sleep(self.send_wait)

    async def _send(self, body: str) -> None:
        """Send one SockJS send body (a JSON array of JSON strings) over HTTP.

        A keep-alive connection the server closed while it sat idle fails at once; like a
        browser, retry such a send once on a new connection.
        """
        head = self._send_head
        if not head:
            url = self.session_url + "/xhr_send" + self.query
            head = self._send_head = self.pool.head("POST", url, SEND_CONTENT_TYPE)
        data = body.encode()
        self.tally.sends += 1
        request = head + b"Content-Length: %d\r\n\r\n" % len(data) + data
        for attempt in (1, 2):
            try:
                status, _ = await self.pool.request(request)
            except TimeoutError:
                raise  # the server is stuck, not gone: a retry would wait as long
            except OSError:  # leanhttp.ConnectionDropped is a ConnectionError
                if attempt == 2 or self.closed:
                    raise
                self.tally.resends += 1
                continue
            if status == 404:
                self.closed = True
                raise SessionClosed("xhr_send: session not found")
            if status not in (200, 204):
                raise RuntimeError(f"xhr_send: HTTP {status}")
            return

    # -- receiving -----------------------------------------------------------------------

    def _control(self, kind: int, frame: str | bytes | memoryview) -> bool:
        """Handle a non-message frame (``o``, ``h``, ``c``); False when the session ended."""
        if kind == 0x6F:  # 'o'
            self.opened = True
            if self._opened is not None and not self._opened.done():
                self._opened.set_result(None)
            return True
        if kind == 0x63:  # 'c'
            raw = frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")
            self.close_reason = raw[1:]
            if self.opened and not self.closed:  # before `o`, open() reports the failure
                self.tally.error(f"{self.transport}: server closed the session {raw[1:]}")
            return False
        return True  # 'h' heartbeat (and the xhr-streaming prelude of 2048 'h')

    def _account(self, msgs: list[Any], now_ms: float) -> None:
        """Book one frame's messages (the JSON strings of ``a[...]``) for an observer."""
        tally = self.tally
        n = len(msgs)
        tally.arrivals += n
        tally.frames += 1
        last = self.last_seen
        room_hist = self.room_hist
        if last is None or room_hist is None or n == 0:
            return
        objs = _loads("[" + ",".join(msgs) + "]") if n > 1 else [_loads(msgs[0])]
        lo = tally.win_lo_ms
        hi = tally.win_hi_ms
        hist = tally.hist
        n_senders = self.n_senders
        rooms = self.rooms
        room = self.room
        lat_sum = 0.0
        lat_max = tally.lat_max
        for m in objs:
            try:
                c = m["c"]
                s = m["s"]
                t = m["t"]
            except (KeyError, TypeError, IndexError):
                tally.foreign += 1
                continue
            if type(c) is not int or not 0 <= c < n_senders:
                tally.foreign += 1
                continue
            if c % rooms != room:
                tally.cross_room += 1
                tally.error(f"room {room} received a move of client {c} (room {c % rooms})")
                continue
            p = c // rooms
            if s > last[p]:
                last[p] = s
            if lo <= t < hi:
                d = now_ms - t
                if d < 100.0:
                    hist[int(d * FINE_PER_MS) if d > 0.0 else 0] += 1
                    room_hist[int(d * 10.0) if d > 0.0 else 0] += 1
                else:
                    hist[bucket_of(d)] += 1
                    room_hist[room_bucket_of(d)] += 1
                lat_sum += d
                if d > lat_max:
                    lat_max = d
        tally.lat_sum += lat_sum
        tally.lat_max = lat_max

    def _messages_str(self, frame: str) -> None:
        """An ``a[...]`` frame received as text (websocket)."""
        if self.last_seen is None:
            tally = self.tally
            tally.arrivals += frame.count(self._NEEDLE_STR)
            tally.frames += 1
            return
        now_ms = (_perf_counter() - self.tally.t0) * 1000.0
        self._account(_loads(frame[1:]), now_ms)

    def _messages_bytes(self, buf: bytes, start: int, end: int) -> None:
        """An ``a[...]`` frame at ``buf[start:end]`` (``buf[start]`` is the ``a``)."""
        if self.last_seen is None:
            tally = self.tally
            tally.arrivals += buf.count(self._NEEDLE_BYTES, start + 1, end)
            tally.frames += 1
            return
        now_ms = (_perf_counter() - self.tally.t0) * 1000.0
        self._account(_loads(memoryview(buf)[start + 1 : end]), now_ms)

    def _frame_bytes(self, buf: bytes, start: int, end: int) -> bool:
        """One frame at ``buf[start:end]``; False when the session ended."""
        if end <= start:
            return True
        kind = buf[start]
        if kind == 0x61:  # 'a'
            self._messages_bytes(buf, start, end)
            return True
        return self._control(kind, memoryview(buf)[start:end])

    def _alive(self) -> bool:
        return not self.closed and _perf_counter() < self.deadline


# Keep the fine-bucket arithmetic in _account in step with stats.py.
assert int(100.0 * FINE_PER_MS) == FINE_BUCKETS
assert room_bucket_of(99.99) == int(99.99 * 10.0)
