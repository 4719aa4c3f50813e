"""One generator process's share of a load point: its clients, its scheduler, its tallies.

``generate`` opens the sessions of the clients a :class:`Part` gives it, says it is ready,
waits for the start time every process of the run shares, paces its clients' moves for
``warmup + duration`` seconds, lets ``drain`` seconds pass with no sends so moves in flight can
land, closes every session and returns a :class:`PartResult` of plain, picklable data that
``runner`` merges with the other processes' results.

The schedule is global: client ``i`` of ``N`` gets its ``k``-th move at
``start + (k * N + i) / (N * rate)``, whichever process owns it, so moves are spread evenly over
each period and over the processes. Deadlines are computed from the start, never accumulated,
so the schedule cannot drift. A move more than one period late is skipped (and counted): the
process could not keep up, and the report says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

from .clients import SockJSClient, Tally
from .probes import own_cpu_seconds
from .stats import LatencyHistogram
from .transports import client_class

if TYPE_CHECKING:
    from .leanhttp import HttpPool

__all__ = [
    "Channel",
    "Part",
    "PartResult",
    "close_all",
    "connector",
    "generate",
    "http_pool",
    "open_all",
]

# The scheduler sleeps at least this long between wake-ups (s).
TICK_QUANTUM = 0.001


@dataclass
class Part:
    """What one generator process does (picklable: it crosses to a worker process)."""

    url: str
    transport: str
    clients: int  # N of the whole run
    rooms: int
    rate: float
    warmup: float
    duration: float
    drain: float
    send_wait: float  # s, HTTP transports: pause after each send (sockjs-client: 0.025)
    indices: list[int]  # the run's client indices this process owns, ascending
    observers: list[int]  # those of ``indices`` that parse and time every message
    t0: float  # origin of the run's clock, time.perf_counter() (CLOCK_MONOTONIC)
    connect_concurrency: int = 100
    connect_timeout: float = 10.0
    pin_cpu: int | None = None


@dataclass
class PartResult:
    """One process's measurements: plain lists and numbers, merged by ``runner``."""

    indices: list[int]
    connected: list[int] = field(default_factory=list)  # client indices whose session opened
    first_seq: list[int] = field(default_factory=list)  # per connected client, window start
    last_seq: list[int] = field(default_factory=list)  # per connected client, window end
    last_seen: dict[int, list[int]] = field(default_factory=dict)  # observer -> row
    arrivals: int = 0  # messages received in the window, all of this process's clients
    hist: list[int] = field(default_factory=list)
    lat_sum: float = 0.0
    lat_max: float = 0.0
    room_hist: dict[int, list[int]] = field(default_factory=dict)
    lag_hist: list[int] = field(default_factory=list)
    lag_max: float = 0.0
    slots: int = 0
    skipped: int = 0
    cpu_seconds: float = 0.0  # this process's CPU during the window
    window: float = 0.0  # measured length of the window, s
    errors: int = 0
    last_error: str = ""
    reopens: int = 0
    resends: int = 0
    window_requests: int = 0  # HTTP sends and receiving requests made in the window
    foreign: int = 0
    cross_room: int = 0


class Channel(Protocol):
    """How a generator process meets the others: it reports ready, then learns the start."""

    async def ready(self, opened: int) -> None: ...

    async def go(self) -> float: ...


def connector() -> aiohttp.TCPConnector:
    # For the websocket transport only (HTTP transports use leanhttp.HttpPool): no limit on
    # connections, one per session.
    return aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0)


def http_pool(url: str) -> HttpPool:
    """The HTTP transports' connection pool of one generator process (see leanhttp)."""
    try:
        from .leanhttp import HttpPool
    except ImportError:
        raise RuntimeError(
            "the load generator's HTTP client needs httptools: pip install 'cursorshare[bench]'"
        ) from None
    return HttpPool(url)


async def open_all(
    clients: list[SockJSClient], concurrency: int, within: float, tally: Tally
) -> list[SockJSClient]:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(c: SockJSClient) -> bool:
        async with sem:
            try:
                await c.open(within)
            except Exception as exc:
                tally.error(f"{c.transport} open: {exc!r}")
                return False
            return True

    ok = await asyncio.gather(*(one(c) for c in clients))
    return [c for c, good in zip(clients, ok, strict=True) if good]


async def close_all(clients: list[SockJSClient]) -> None:
    if clients:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients)), 10.0)


async def _schedule(
    clients: list[SockJSClient], part: Part, start: float, tally: Tally, lag: LatencyHistogram
) -> PartResult:
    """Pace this process's clients' moves on the run's global schedule."""
    res = PartResult(indices=part.indices)
    m = len(clients)
    n = part.clients
    period = 1.0 / part.rate
    slot = period / n  # one slot of the global schedule
    order = [c.index for c in clients]  # ascending: due times grow with j
    perf = time.perf_counter
    t0 = part.t0
    win_start = start + part.warmup
    win_end = win_start + part.duration
    tally.win_lo_ms = (win_start - t0) * 1000.0
    tally.win_hi_ms = (win_end - t0) * 1000.0
    in_window = False
    arrivals_start = 0
    requests_start = 0
    cpu_start = 0.0
    t_start = win_start
    if m == 0:
        return res
    j = 0
    due = start + order[0] * slot
    while True:
        now = perf()
        if not in_window and now >= win_start:
            in_window = True
            t_start = now
            res.first_seq = [c.seq for c in clients]
            arrivals_start = tally.arrivals
            requests_start = tally.sends + tally.reopens
            cpu_start = own_cpu_seconds()
        if now >= win_end:
            res.window = now - t_start
            res.last_seq = [c.seq - 1 for c in clients]
            res.arrivals = tally.arrivals - arrivals_start
            res.window_requests = tally.sends + tally.reopens - requests_start
            res.cpu_seconds = own_cpu_seconds() - cpu_start
            return res
        now_ms = (now - t0) * 1000.0
        while due <= now:
            c = clients[j % m]
            late = now - due
            if in_window:
                res.slots += 1
            if late > period:
                if in_window:
                    res.skipped += 1
            else:
                if in_window:
                    lag.record(late * 1000.0)
                if not c.closed:
                    c.move(now_ms)
            j += 1
            k, i = divmod(j, m)
            due = start + (k * n + order[i]) * slot
        # Wake at the next deadline but at most every TICK_QUANTUM: with many clients the
        # slots are microseconds apart, and one wake-up per slot would cost more than it buys.
        await asyncio.sleep(max(TICK_QUANTUM, min(due, win_end) - perf()))


async def generate(part: Part, channel: Channel) -> PartResult:
    """Run this process's share of a load point (see the module docstring)."""
    cls = client_class(part.transport)
    tally = Tally(t0=part.t0)
    lag = LatencyHistogram()
    observers = set(part.observers)
    n_own = len(part.indices)
    # Every receive loop gives up at this point whatever happens (the wait for the other
    # processes to open their sessions included).
    deadline = time.perf_counter() + 60.0 + part.warmup + part.duration + part.drain
    deadline += 2 * part.connect_timeout * (1 + part.clients / max(1, part.connect_concurrency))
    async with (
        aiohttp.ClientSession(
            connector=connector(), timeout=aiohttp.ClientTimeout(total=30.0)
        ) as http,
        http_pool(part.url) as pool,
    ):
        clients = [
            cls(
                http,
                pool,
                part.url,
                i,
                tally,
                n_senders=part.clients,
                rooms=part.rooms,
                observer=i in observers,
                deadline=deadline,
                send_wait=part.send_wait,
            )
            for i in part.indices
        ]
        connected: list[SockJSClient] = []
        try:
            connected = await open_all(
                clients, part.connect_concurrency, part.connect_timeout, tally
            )
            if cls.buffered_sender:  # sends over HTTP: one connection per client for them
                await pool.prewarm(len(connected), part.connect_concurrency)
            await channel.ready(len(connected))
            start = await channel.go()
            # The hot path makes no reference cycles: keep the cyclic GC's pauses out of the
            # measurement (they stall every client at once) and collect once at the end.
            gc.collect()
            gc.freeze()
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                res = await _schedule(connected, part, start, tally, lag)
                await asyncio.sleep(part.drain)
            finally:
                if gc_was_enabled:
                    gc.enable()
                gc.unfreeze()
        finally:
            await close_all(clients)
            gc.collect()
    res.connected = [c.index for c in connected]
    res.last_seen = {c.index: c.last_seen for c in connected if c.last_seen is not None}
    res.hist = tally.hist
    res.lat_sum = tally.lat_sum
    res.lat_max = tally.lat_max
    res.room_hist = {r: h for r, h in tally.room_hist.items() if any(h)}
    res.lag_hist = lag.counts
    res.lag_max = lag.max_ms
    res.errors = tally.errors
    res.last_error = tally.last_error
    res.reopens = tally.reopens
    res.resends = tally.resends
    res.foreign = tally.foreign
    res.cross_room = tally.cross_room
    if n_own and not connected:
        res.window = part.duration
    return res
