"""One load point (``run_load``) and one idle-memory point (``run_idle``), as async functions.

Timeline of ``run_load``: open every session (bounded concurrency), then one global scheduler
paces the moves of all clients for ``warmup + duration`` seconds, then ``drain`` seconds pass
with no sends so moves in flight can land, then every session is closed. Only the window after
the warmup is measured.

The scheduler gives client ``i`` its ``k``-th move at ``start + (k * n + i) / (n * rate)``:
the clients' moves are spread evenly over each period, and deadlines are computed from the
start, never accumulated, so the schedule cannot drift. A move more than one period late is
skipped (and counted): the load generator could not keep up, and the report says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import aiohttp

from .clients import SockJSClient, Tally, client_class
from .stats import LatencyHistogram, coverage

__all__ = [
    "OTHER_CPU_LIMIT",
    "IdleConfig",
    "IdleResult",
    "LoadConfig",
    "LoadResult",
    "ServerProbe",
    "machine_busy_seconds",
    "raise_nofile_limit",
    "run_idle",
    "run_load",
    "run_sync",
]

T = TypeVar("T")

# The load generator is the bottleneck when its CPU reaches this share of one core ...
GEN_CPU_LIMIT = 90.0
# ... or when its sends lag their schedule by more than this (p99, ms) ...
LAG_LIMIT_MS = 10.0
# ... or when it had to skip more than this fraction of scheduled moves.
SKIP_LIMIT = 0.001
# Other processes using more than this share of one core during the window make it noisy.
OTHER_CPU_LIMIT = 25.0
# The scheduler sleeps at least this long between wake-ups (s).
TICK_QUANTUM = 0.001


@dataclass
class LoadConfig:
    url: str
    transport: str = "websocket"
    clients: int = 10
    rate: float = 30.0
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 1.0
    observers: int | None = None  # clients that parse and time every message; None: all
    server_pid: int | None = None
    connect_concurrency: int = 100
    connect_timeout: float = 10.0


@dataclass
class LoadResult:
    transport: str
    url: str
    clients: int
    connected: int
    observers: int
    rate: float
    duration: float  # measured length of the window, s
    sent: int  # moves sent in the window
    sent_per_s: float
    delivered: int  # messages received in the window, all clients
    delivered_per_s: float
    expected: int  # sent x connected clients
    expected_per_s: float
    covered: int  # observer deliveries covered (superseded moves counted)
    covered_expected: int
    coverage: float | None
    latency_samples: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    latency_mean_ms: float | None
    send_lag_p99_ms: float | None
    send_lag_max_ms: float | None
    skipped: int  # scheduled moves skipped because the generator was over a period late
    server_cpu_percent: float | None
    server_rss_mib: float | None
    server_rss_peak_mib: float | None
    gen_cpu_percent: float
    other_cpu_percent: float | None  # the rest of the machine (kernel included), needs a pid
    errors: int
    last_error: str
    reopens: int
    resends: int
    foreign: int
    warnings: list[str] = field(default_factory=list)

    @property
    def generator_bound(self) -> bool:
        return any(w.startswith("load generator") for w in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["generator_bound"] = self.generator_bound
        return d


@dataclass
class IdleConfig:
    url: str
    transport: str = "websocket"
    sessions: int = 1000
    server_pid: int | None = None
    settle: float = 3.0
    connect_concurrency: int = 200
    connect_timeout: float = 20.0


@dataclass
class IdleResult:
    transport: str
    url: str
    sessions: int
    connected: int
    open_seconds: float
    rss_before_mib: float | None
    rss_after_mib: float | None
    per_session_kib: float | None
    errors: int
    last_error: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServerProbe:
    """CPU time and RSS of a server process and its children, through psutil."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(pid)

    def _procs(self) -> list[Any]:
        procs: list[Any] = [self.proc]
        with contextlib.suppress(self._psutil.Error):
            procs.extend(self.proc.children(recursive=True))
        return procs

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._procs():
            with contextlib.suppress(self._psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for p in self._procs():
            with contextlib.suppress(self._psutil.Error):
                total += int(p.memory_info().rss)
        return total


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine (all CPUs) since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...
    busy = sum(int(v) for i, v in enumerate(fields[1:9]) if i not in (3, 4))
    return busy / ticks


def _own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raise_nofile_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return int(soft)
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return int(soft)


def _connector() -> aiohttp.TCPConnector:
    # Idle keep-alive connections are dropped after 4 s, before servers drop them (node's
    # http server closes them after 5 s), so a send rarely picks a connection being closed.
    return aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0)


async def _open_all(
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


async def _close_all(clients: list[SockJSClient]) -> None:
    if clients:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients)), 10.0)


@dataclass
class _Window:
    start: float = 0.0
    end: float = 0.0
    first_seq: list[int] = field(default_factory=list)
    last_seq: list[int] = field(default_factory=list)
    arrivals_start: int = 0
    arrivals_end: int = 0
    gen_cpu_start: float = 0.0
    gen_cpu_end: float = 0.0
    machine_start: float = 0.0
    machine_end: float = 0.0
    server_cpu_start: float = 0.0
    server_cpu_end: float = 0.0
    slots: int = 0
    skipped: int = 0
    rss_samples: list[int] = field(default_factory=list)


async def _schedule(
    clients: list[SockJSClient],
    tally: Tally,
    rate: float,
    warmup: float,
    duration: float,
    probe: ServerProbe | None,
    lag: LatencyHistogram,
) -> _Window:
    """Pace every client's moves from one ticker; returns the window's snapshots."""
    n = len(clients)
    win = _Window()
    if n == 0:
        return win
    period = 1.0 / rate
    slot = period / n
    perf = time.perf_counter
    t0 = tally.t0
    start = perf()
    win_start = start + warmup
    win_end = win_start + duration
    tally.win_lo_ms = (win_start - t0) * 1000.0
    tally.win_hi_ms = (win_end - t0) * 1000.0
    in_window = False
    j = 0
    next_rss = win_start
    while True:
        now = perf()
        if not in_window and now >= win_start:
            in_window = True
            win.start = now
            win.first_seq = [c.seq for c in clients]
            win.arrivals_start = tally.arrivals
            win.gen_cpu_start = _own_cpu_seconds()
            win.machine_start = machine_busy_seconds()
            if probe is not None:
                win.server_cpu_start = probe.cpu_seconds()
        if now >= win_end:
            win.end = now
            win.last_seq = [c.seq - 1 for c in clients]
            win.arrivals_end = tally.arrivals
            win.gen_cpu_end = _own_cpu_seconds()
            win.machine_end = machine_busy_seconds()
            if probe is not None:
                win.server_cpu_end = probe.cpu_seconds()
                win.rss_samples.append(probe.rss_bytes())
            return win
        if probe is not None and in_window and now >= next_rss:
            win.rss_samples.append(probe.rss_bytes())
            next_rss = now + 0.5
        now_ms = (now - t0) * 1000.0
        due = start + j * slot
        while due <= now:
            c = clients[j % n]
            late = now - due
            if in_window:
                win.slots += 1
            if late > period:
                if in_window:
                    win.skipped += 1
            else:
                if in_window:
                    lag.record(late * 1000.0)
                if not c.closed:
                    c.move(now_ms)
            j += 1
            due = start + j * slot
        # Wake at the next deadline but at most every TICK_QUANTUM: with many clients the
        # slots are microseconds apart, and one wake-up per slot would cost more than it buys.
        await asyncio.sleep(max(TICK_QUANTUM, min(due, win_end) - perf()))


async def run_load(config: LoadConfig) -> LoadResult:
    """Run one load point and return its measurements."""
    if config.clients < 1 or config.rate <= 0 or config.duration <= 0:
        raise ValueError("clients >= 1, rate > 0 and duration > 0 are required")
    cls = client_class(config.transport)
    raise_nofile_limit(4 * config.clients + 256)
    n = config.clients
    n_obs = n if config.observers is None else max(1, min(n, config.observers))
    probe = ServerProbe(config.server_pid) if config.server_pid else None
    tally = Tally()
    lag = LatencyHistogram()
    # Every receive loop gives up at this point whatever happens.
    deadline = time.perf_counter() + 30.0 + config.warmup + config.duration + config.drain
    deadline += config.connect_timeout * (1 + n / max(1, config.connect_concurrency))
    async with aiohttp.ClientSession(
        connector=_connector(), timeout=aiohttp.ClientTimeout(total=30.0)
    ) as http:
        # Observers are spread evenly over the client list.
        obs_every = n / n_obs
        observer_ids = {int(k * obs_every) for k in range(n_obs)}
        clients = [
            cls(
                http,
                config.url,
                i,
                tally,
                n_senders=n,
                observer=i in observer_ids,
                deadline=deadline,
            )
            for i in range(n)
        ]
        try:
            connected = await _open_all(
                clients, config.connect_concurrency, config.connect_timeout, tally
            )
            # The hot path makes no reference cycles: keep the cyclic GC's pauses out of the
            # measurement (they stall every client at once) and collect once at the end.
            gc.collect()
            gc.freeze()
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                win = await _schedule(
                    connected, tally, config.rate, config.warmup, config.duration, probe, lag
                )
                await asyncio.sleep(config.drain)
            finally:
                if gc_was_enabled:
                    gc.enable()
                gc.unfreeze()
        finally:
            await _close_all(clients)
            gc.collect()
    return _summarize(config, connected, n_obs, win, tally, lag, probe)


def _summarize(
    config: LoadConfig,
    connected: list[SockJSClient],
    n_obs: int,
    win: _Window,
    tally: Tally,
    lag: LatencyHistogram,
    probe: ServerProbe | None,
) -> LoadResult:
    n_conn = len(connected)
    span = win.end - win.start if win.end > win.start else config.duration
    # Sender windows are indexed by client index (the "c" field), so map connected clients.
    windows = [(0, -1)] * config.clients
    for k, c in enumerate(connected):
        if win.first_seq:
            windows[c.index] = (win.first_seq[k], win.last_seq[k])
    sent = sum(max(0, last - first + 1) for first, last in windows)
    observers = [c.last_seen for c in connected if c.last_seen is not None]
    covered, covered_expected = coverage(observers, windows)
    hist = LatencyHistogram()
    hist.counts = tally.hist
    hist.sum_ms = tally.lat_sum
    hist.max_ms = tally.lat_max
    n_lat = hist.count
    delivered = win.arrivals_end - win.arrivals_start
    gen_cpu = 100.0 * (win.gen_cpu_end - win.gen_cpu_start) / span if span > 0 else 0.0
    server_cpu = None
    rss = rss_peak = None
    if probe is not None and win.rss_samples:
        server_cpu = 100.0 * (win.server_cpu_end - win.server_cpu_start) / span
        rss = win.rss_samples[-1] / 2**20
        rss_peak = max(win.rss_samples) / 2**20
    lag_p99 = lag.percentile(99)
    other_cpu = None
    if win.machine_end > win.machine_start and probe is not None:
        machine = 100.0 * (win.machine_end - win.machine_start) / span
        other_cpu = max(0.0, machine - gen_cpu - (server_cpu or 0.0))
    warnings: list[str] = []
    if gen_cpu >= GEN_CPU_LIMIT:
        warnings.append(
            f"load generator CPU at {gen_cpu:.0f}% of one core: it may be the bottleneck"
        )
    if win.slots and win.skipped / win.slots > SKIP_LIMIT:
        warnings.append(
            f"load generator skipped {win.skipped} of {win.slots} scheduled moves "
            "(its send schedule slipped by more than a period)"
        )
    if lag_p99 is not None and lag_p99 > LAG_LIMIT_MS:
        warnings.append(f"load generator send schedule slipped: p99 lag {lag_p99:.1f} ms")
    if other_cpu is not None and other_cpu > OTHER_CPU_LIMIT:
        warnings.append(
            f"other processes used {other_cpu:.0f}% of a core during the window: noisy numbers"
        )
    if n_conn < config.clients:
        warnings.append(f"only {n_conn} of {config.clients} sessions opened")
    if tally.errors:
        warnings.append(f"{tally.errors} errors, last: {tally.last_error}")
    return LoadResult(
        transport=config.transport,
        url=config.url,
        clients=config.clients,
        connected=n_conn,
        observers=len(observers),
        rate=config.rate,
        duration=span,
        sent=sent,
        sent_per_s=sent / span,
        delivered=delivered,
        delivered_per_s=delivered / span,
        expected=sent * n_conn,
        expected_per_s=sent * n_conn / span,
        covered=covered,
        covered_expected=covered_expected,
        coverage=covered / covered_expected if covered_expected else None,
        latency_samples=n_lat,
        latency_p50_ms=hist.percentile(50),
        latency_p95_ms=hist.percentile(95),
        latency_p99_ms=hist.percentile(99),
        latency_max_ms=tally.lat_max if n_lat else None,
        latency_mean_ms=hist.mean(),
        send_lag_p99_ms=lag_p99,
        send_lag_max_ms=lag.max_ms if lag.count else None,
        skipped=win.skipped,
        server_cpu_percent=server_cpu,
        server_rss_mib=rss,
        server_rss_peak_mib=rss_peak,
        gen_cpu_percent=gen_cpu,
        other_cpu_percent=other_cpu,
        errors=tally.errors,
        last_error=tally.last_error,
        reopens=tally.reopens,
        resends=tally.resends,
        foreign=tally.foreign,
        warnings=warnings,
    )


async def run_idle(config: IdleConfig) -> IdleResult:
    """Open ``sessions`` idle sessions and report the server's RSS growth per session."""
    cls = client_class(config.transport)
    raise_nofile_limit(3 * config.sessions + 256)
    probe = ServerProbe(config.server_pid) if config.server_pid else None
    tally = Tally()
    deadline = (
        time.perf_counter()
        + config.connect_timeout * (1 + config.sessions / max(1, config.connect_concurrency))
        + config.settle
        + 60.0
    )
    rss_before = rss_after = None
    warnings: list[str] = []
    async with aiohttp.ClientSession(
        connector=_connector(), timeout=aiohttp.ClientTimeout(total=30.0)
    ) as http:
        if probe is not None:
            rss_before = probe.rss_bytes()
        clients = [
            cls(http, config.url, i, tally, n_senders=0, observer=False, deadline=deadline)
            for i in range(config.sessions)
        ]
        t_open = time.perf_counter()
        try:
            connected = await _open_all(
                clients, config.connect_concurrency, config.connect_timeout, tally
            )
            open_seconds = time.perf_counter() - t_open
            await asyncio.sleep(config.settle)
            if probe is not None:
                rss_after = probe.rss_bytes()
        finally:
            await _close_all(clients)
    per = None
    if rss_before is not None and rss_after is not None and connected:
        per = (rss_after - rss_before) / len(connected) / 1024.0
    if len(connected) < config.sessions:
        warnings.append(f"only {len(connected)} of {config.sessions} sessions opened")
    if tally.errors:
        warnings.append(f"{tally.errors} errors, last: {tally.last_error}")
    return IdleResult(
        transport=config.transport,
        url=config.url,
        sessions=config.sessions,
        connected=len(connected),
        open_seconds=open_seconds,
        rss_before_mib=None if rss_before is None else rss_before / 2**20,
        rss_after_mib=None if rss_after is None else rss_after / 2**20,
        per_session_kib=per,
        errors=tally.errors,
        last_error=tally.last_error,
        warnings=warnings,
    )


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def pin_to_cpu(cpu: int) -> bool:
    """Pin this process to one CPU; False when the machine has no such CPU."""
    try:
        if cpu not in os.sched_getaffinity(0) and cpu >= (os.cpu_count() or 1):
            return False
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError, ValueError):
        return False
    return True
