"""A load point's configuration and result, and the merge of every process's measurements.

Coverage and latency are computed per room (a receiver expects the moves of its own room's
senders only) and summed over the rooms. The report says the load generator was a bottleneck
(``generator_bound``) when any of its processes was: CPU saturated, send schedule slipped or
moves skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .clients import SOCKJS_CLIENT_SEND_WAIT_MS
from .generator import PartResult
from .stats import LatencyHistogram, coverage, room_percentile

__all__ = [
    "GEN_CPU_LIMIT",
    "LAG_LIMIT_MS",
    "OTHER_CPU_LIMIT",
    "SKIP_LIMIT",
    "LoadConfig",
    "LoadResult",
    "RoomStats",
    "WindowSamples",
    "summarize",
]

# A generator process is the bottleneck when its CPU reaches this share of one core ...
GEN_CPU_LIMIT = 90.0
# ... or when its sends lag their schedule by more than this (p99, ms) ...
LAG_LIMIT_MS = 10.0
# ... or when it had to skip more than this fraction of its scheduled moves.
SKIP_LIMIT = 0.001
# Other processes using more than this share of one core during the window make it noisy.
OTHER_CPU_LIMIT = 25.0
# A room "holds" when this share of its moves reached each of its observers.
ROOM_COVERAGE_OK = 0.99


@dataclass
class LoadConfig:
    url: str
    transport: str = "websocket"
    clients: int = 10
    rate: float = 30.0
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 1.0
    # HTTP transports: seconds after a send completes before the next (sockjs-client: 25 ms).
    send_wait: float = SOCKJS_CLIENT_SEND_WAIT_MS / 1000.0
    observers: int | None = None  # clients that parse and time every message; None: all
    server_pid: int | None = None
    rooms: int = 1  # client i is in room i % rooms
    processes: int = 1  # generator processes, each owning the clients i % processes == w
    pin_cpus: list[int] | None = None  # process w is pinned to pin_cpus[w % len(pin_cpus)]
    connect_concurrency: int = 100
    connect_timeout: float = 10.0


@dataclass
class WindowSamples:
    """What the coordinating process sampled over the window (server and machine)."""

    start: float = 0.0
    end: float = 0.0
    server_cpu_seconds: float | None = None
    rss_samples: list[int] = field(default_factory=list)
    machine_busy_seconds: float | None = None


@dataclass
class RoomStats:
    room: int
    members: int
    connected: int
    observers: int
    sent: int  # the room's moves in the window
    covered: int
    covered_expected: int
    coverage: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None


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
    expected: int  # every window move once per connected client of its room
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
    skipped: int  # scheduled moves skipped because a generator was over a period late
    server_cpu_percent: float | None
    server_rss_mib: float | None
    server_rss_peak_mib: float | None
    gen_cpu_percent: float  # the busiest generator process, % of one core
    other_cpu_percent: float | None  # the rest of the machine (kernel included), needs a pid
    errors: int
    last_error: str
    reopens: int
    resends: int
    foreign: int
    # HTTP transports: requests per second in the window (sends, polls, reopened streams).
    http_requests_per_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    rooms: int = 1
    rooms_observed: int = 0  # rooms with at least one observer whose session opened
    rooms_below: int = 0  # observed rooms whose coverage was under ROOM_COVERAGE_OK
    room_coverage_min: float | None = None
    room_p99_max_ms: float | None = None  # the worst observed room's p99 latency
    cross_room: int = 0  # moves a client received from another room's sender (errors)
    processes: int = 1
    gen_cpu_per_process: list[float] = field(default_factory=list)
    per_room: list[RoomStats] = field(default_factory=list)

    @property
    def generator_bound(self) -> bool:
        return any(w.startswith("load generator") for w in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["generator_bound"] = self.generator_bound
        return d


def observer_indices(clients: int, observers: int | None) -> list[int]:
    """The clients that parse every message: the first K, i.e. one per room in turn.

    Client ``i`` is member ``i // rooms`` of room ``i % rooms``, so the first ``rooms`` clients
    are one member of each room, the next ``rooms`` a second member of each, and so on.
    """
    k = clients if observers is None else max(1, min(clients, observers))
    return list(range(k))


def _room_stats(
    config: LoadConfig, parts: list[PartResult], windows: dict[int, tuple[int, int]]
) -> list[RoomStats]:
    k = config.rooms
    rows_by_room: dict[int, list[list[int]]] = {}
    for part in parts:
        for i, row in part.last_seen.items():
            rows_by_room.setdefault(i % k, []).append(row)
    hist_by_room: dict[int, list[int]] = {}
    for part in parts:
        for r, counts in part.room_hist.items():
            merged = hist_by_room.get(r)
            if merged is None:
                hist_by_room[r] = list(counts)
            else:
                for b, c in enumerate(counts):
                    if c:
                        merged[b] += c
    rooms = []
    for r in range(min(k, config.clients)):
        members = range(r, config.clients, k)
        room_windows = [windows.get(i, (0, -1)) for i in members]
        rows = rows_by_room.get(r, [])
        covered, expected = coverage(rows, room_windows)
        room_counts = hist_by_room.get(r)
        rooms.append(
            RoomStats(
                room=r,
                members=len(members),
                connected=sum(1 for i in members if i in windows),
                observers=len(rows),
                sent=sum(max(0, last - first + 1) for first, last in room_windows),
                covered=covered,
                covered_expected=expected,
                coverage=covered / expected if expected else None,
                latency_p50_ms=room_percentile(room_counts, 50) if room_counts else None,
                latency_p99_ms=room_percentile(room_counts, 99) if room_counts else None,
            )
        )
    return rooms


def _generator_warnings(config: LoadConfig, parts: list[PartResult]) -> list[str]:
    warnings: list[str] = []
    for w, part in enumerate(parts):
        who = "load generator" if len(parts) == 1 else f"load generator process {w + 1}"
        cpu = 100.0 * part.cpu_seconds / part.window if part.window > 0 else 0.0
        if cpu >= GEN_CPU_LIMIT:
            warnings.append(f"{who} CPU at {cpu:.0f}% of one core: it may be the bottleneck")
        if part.slots and part.skipped / part.slots > SKIP_LIMIT:
            warnings.append(
                f"{who} skipped {part.skipped} of {part.slots} scheduled moves "
                "(its send schedule slipped by more than a period)"
            )
        lag = LatencyHistogram()
        lag.counts = part.lag_hist or lag.counts
        p99 = lag.percentile(99)
        if p99 is not None and p99 > LAG_LIMIT_MS:
            warnings.append(f"{who} send schedule slipped: p99 lag {p99:.1f} ms")
    return warnings


def summarize(config: LoadConfig, parts: list[PartResult], samples: WindowSamples) -> LoadResult:
    """Merge every process's measurements into one report."""
    windows: dict[int, tuple[int, int]] = {}
    for part in parts:
        for k, i in enumerate(part.connected):
            if part.first_seq:
                windows[i] = (part.first_seq[k], part.last_seq[k])
            else:
                windows[i] = (0, -1)
    n_conn = len(windows)
    span = samples.end - samples.start
    if span <= 0:
        span = max((p.window for p in parts), default=0.0) or config.duration
    rooms = _room_stats(config, parts, windows)
    sent = sum(r.sent for r in rooms)
    expected = sum(r.sent * r.connected for r in rooms)
    covered = sum(r.covered for r in rooms)
    covered_expected = sum(r.covered_expected for r in rooms)
    observed = [r for r in rooms if r.covered_expected]
    hist = LatencyHistogram()
    lag = LatencyHistogram()
    for part in parts:
        for h, counts in ((hist, part.hist), (lag, part.lag_hist)):
            if counts:
                other = LatencyHistogram()
                other.counts = counts
                h.merge(other)
        hist.sum_ms += part.lat_sum
        hist.max_ms = max(hist.max_ms, part.lat_max)
        lag.max_ms = max(lag.max_ms, part.lag_max)
    gen_cpus = [100.0 * p.cpu_seconds / p.window if p.window > 0 else 0.0 for p in parts]
    server_cpu = rss = rss_peak = None
    if samples.server_cpu_seconds is not None and samples.rss_samples:
        server_cpu = 100.0 * samples.server_cpu_seconds / span
        rss = samples.rss_samples[-1] / 2**20
        rss_peak = max(samples.rss_samples) / 2**20
    other_cpu = None
    if samples.machine_busy_seconds and server_cpu is not None:
        machine = 100.0 * samples.machine_busy_seconds / span
        other_cpu = max(0.0, machine - sum(gen_cpus) - server_cpu)
    errors = sum(p.errors for p in parts)
    last_error = next((p.last_error for p in reversed(parts) if p.last_error), "")
    cross_room = sum(p.cross_room for p in parts)
    warnings = _generator_warnings(config, parts)
    if other_cpu is not None and other_cpu > OTHER_CPU_LIMIT:
        warnings.append(
            f"other processes used {other_cpu:.0f}% of a core during the window: noisy numbers"
        )
    if n_conn < config.clients:
        warnings.append(f"only {n_conn} of {config.clients} sessions opened")
    if cross_room:
        warnings.append(f"{cross_room} moves were delivered to a client of another room")
    if errors:
        warnings.append(f"{errors} errors, last: {last_error}")
    n_lat = hist.count
    room_cov = [r.coverage for r in observed if r.coverage is not None]
    room_p99 = [r.latency_p99_ms for r in observed if r.latency_p99_ms is not None]
    return LoadResult(
        transport=config.transport,
        url=config.url,
        clients=config.clients,
        connected=n_conn,
        observers=sum(len(p.last_seen) for p in parts),
        rate=config.rate,
        duration=span,
        sent=sent,
        sent_per_s=sent / span,
        delivered=sum(p.arrivals for p in parts),
        delivered_per_s=sum(p.arrivals for p in parts) / span,
        expected=expected,
        expected_per_s=expected / span,
        covered=covered,
        covered_expected=covered_expected,
        coverage=covered / covered_expected if covered_expected else None,
        latency_samples=n_lat,
        latency_p50_ms=hist.percentile(50),
        latency_p95_ms=hist.percentile(95),
        latency_p99_ms=hist.percentile(99),
        latency_max_ms=hist.max_ms if n_lat else None,
        latency_mean_ms=hist.mean(),
        send_lag_p99_ms=lag.percentile(99),
        send_lag_max_ms=lag.max_ms if lag.count else None,
        skipped=sum(p.skipped for p in parts),
        server_cpu_percent=server_cpu,
        server_rss_mib=rss,
        server_rss_peak_mib=rss_peak,
        gen_cpu_percent=max(gen_cpus, default=0.0),
        other_cpu_percent=other_cpu,
        errors=errors,
        last_error=last_error,
        reopens=sum(p.reopens for p in parts),
        resends=sum(p.resends for p in parts),
        foreign=sum(p.foreign for p in parts),
        http_requests_per_s=(
            None
            if config.transport == "websocket"
            else sum(p.window_requests for p in parts) / span
        ),
        warnings=warnings,
        rooms=config.rooms,
        rooms_observed=len(observed),
        rooms_below=sum(1 for c in room_cov if c < ROOM_COVERAGE_OK),
        room_coverage_min=min(room_cov, default=None),
        room_p99_max_ms=max(room_p99, default=None),
        cross_room=cross_room,
        processes=len(parts),
        gen_cpu_per_process=gen_cpus,
        per_room=rooms,
    )
