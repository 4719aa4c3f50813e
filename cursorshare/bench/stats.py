"""Measurement primitives of the load generator: a latency histogram, coverage accounting and
the counters every client of a process shares (`Tally`).

Everything here is plain Python on plain lists so that the hot path (one frame handler per
received frame) can bind the lists to locals and update them without allocating.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "FINE_BUCKETS",
    "FINE_PER_MS",
    "ROOM_BUCKETS",
    "LatencyHistogram",
    "Tally",
    "coverage",
    "covered_moves",
    "room_bucket_of",
    "room_percentile",
]

# Buckets: 10 µs wide below 100 ms, then 1 ms wide up to 60 s; larger values land in the last.
FINE_PER_MS = 100  # fine buckets per millisecond (10 µs each)
FINE_LIMIT_MS = 100  # fine buckets cover [0, 100) ms
FINE_BUCKETS = FINE_PER_MS * FINE_LIMIT_MS
COARSE_LIMIT_MS = 60_000
N_BUCKETS = FINE_BUCKETS + (COARSE_LIMIT_MS - FINE_LIMIT_MS)


def bucket_of(ms: float) -> int:
    """Index of the bucket holding a latency of ``ms`` milliseconds (negative clamps to 0)."""
    if ms < FINE_LIMIT_MS:
        return int(ms * FINE_PER_MS) if ms > 0 else 0
    i = FINE_BUCKETS + int(ms) - FINE_LIMIT_MS
    return i if i < N_BUCKETS else N_BUCKETS - 1


def bucket_bounds(i: int) -> tuple[float, float]:
    """[low, high) of bucket ``i`` in milliseconds."""
    if i < FINE_BUCKETS:
        return i / FINE_PER_MS, (i + 1) / FINE_PER_MS
    low = float(i - FINE_BUCKETS + FINE_LIMIT_MS)
    return low, low + 1.0


# Per-room histograms are kept for every observed room, possibly thousands, so they are
# coarser: 0.1 ms wide below 100 ms, 1 ms below 1 s, then 100 ms wide up to 60 s.
ROOM_FINE = 1000  # [0, 100) ms in 0.1 ms buckets
ROOM_MID = ROOM_FINE + 900  # [100, 1000) ms in 1 ms buckets
ROOM_BUCKETS = ROOM_MID + 590  # [1, 60) s in 100 ms buckets; larger values land in the last


def room_bucket_of(ms: float) -> int:
    """Index of the per-room bucket holding ``ms`` milliseconds (negative clamps to 0)."""
    if ms < 100.0:
        return int(ms * 10.0) if ms > 0 else 0
    if ms < 1000.0:
        return ROOM_FINE + int(ms) - 100
    i = ROOM_MID + int((ms - 1000.0) / 100.0)
    return i if i < ROOM_BUCKETS else ROOM_BUCKETS - 1


def room_bucket_bounds(i: int) -> tuple[float, float]:
    """[low, high) of per-room bucket ``i`` in milliseconds."""
    if i < ROOM_FINE:
        return i / 10.0, (i + 1) / 10.0
    if i < ROOM_MID:
        low = float(i - ROOM_FINE + 100)
        return low, low + 1.0
    low = 1000.0 + 100.0 * (i - ROOM_MID)
    return low, low + 100.0


def _percentile(
    counts: Sequence[int], bounds: Callable[[int], tuple[float, float]], q: float
) -> float | None:
    """Nearest-rank percentile ``q`` of a bucketed histogram, as the bucket's midpoint."""
    if not 0 < q <= 100:
        raise ValueError("percentile must be in (0, 100]")
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100.0 * total))
    seen = 0
    for i, n in enumerate(counts):
        if n:
            seen += n
            if seen >= rank:
                low, high = bounds(i)
                return (low + high) / 2.0
    raise AssertionError("unreachable")  # pragma: no cover


def room_percentile(counts: Sequence[int], q: float) -> float | None:
    """Percentile ``q`` of a per-room histogram (error at most half a bucket)."""
    return _percentile(counts, room_bucket_bounds, q)


class LatencyHistogram:
    """Fixed-bucket latency histogram in milliseconds.

    ``counts`` is a public list so a hot loop may do ``counts[bucket_of(ms)] += 1`` itself
    (or inline the bucket arithmetic); ``record`` is the convenient form.
    """

    __slots__ = ("counts", "max_ms", "sum_ms")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * N_BUCKETS
        self.sum_ms = 0.0
        self.max_ms = 0.0

    def record(self, ms: float) -> None:
        self.counts[bucket_of(ms)] += 1
        self.sum_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms

    def record_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: LatencyHistogram) -> None:
        c = self.counts
        for i, n in enumerate(other.counts):
            if n:
                c[i] += n
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def mean(self) -> float | None:
        n = self.count
        return self.sum_ms / n if n else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile ``q`` (0 < q <= 100), reported as the bucket's midpoint.

        The error is at most half a bucket: 5 µs below 100 ms, 0.5 ms above. ``None`` when
        the histogram is empty.
        """
        return _percentile(self.counts, bucket_bounds, q)


def covered_moves(last_seen: int, first: int, last: int) -> int:
    """How many of one sender's window moves one receiver got, counting superseded ones.

    The sender sent sequence numbers ``first..last`` (inclusive) inside the measurement window;
    ``last_seen`` is the highest sequence number of that sender the receiver ever got (-1 for
    none). A move the server dropped because a later move of the same sender superseded it
    counts as delivered once that later move arrived, so every window move up to
    ``last_seen`` is covered.
    """
    if last < first or last_seen < first:
        return 0
    return min(last_seen, last) - first + 1


def coverage(
    last_seen_by_receiver: Iterable[Sequence[int]],
    windows: Sequence[tuple[int, int]],
) -> tuple[int, int]:
    """``(covered, expected)`` over receivers x senders.

    ``windows[c]`` is sender ``c``'s ``(first, last)`` window sequence range; each row of
    ``last_seen_by_receiver`` holds, per sender index, the highest sequence number that receiver
    got. Every window move is expected once per receiver (the sender included).
    """
    per_receiver = sum(max(0, last - first + 1) for first, last in windows)
    covered = 0
    expected = 0
    for row in last_seen_by_receiver:
        expected += per_receiver
        for c, (first, last) in enumerate(windows):
            covered += covered_moves(row[c], first, last)
    return covered, expected


class Tally:
    """Counters shared by every client of one generator process. Single-threaded.

    ``t0`` is the origin of the run's clock (``time.perf_counter()``, CLOCK_MONOTONIC on Linux,
    so one origin serves every generator process of a run); the ``t`` field of every move is
    milliseconds since ``t0``. Latency is recorded only for moves whose ``t`` lies in
    ``[win_lo_ms, win_hi_ms)``.
    """

    __slots__ = (
        "arrivals",
        "cross_room",
        "errors",
        "foreign",
        "frames",
        "hist",
        "last_error",
        "lat_max",
        "lat_sum",
        "reopens",
        "resends",
        "room_hist",
        "sends",
        "t0",
        "win_hi_ms",
        "win_lo_ms",
    )

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.perf_counter() if t0 is None else t0
        self.arrivals = 0  # messages received, all clients
        self.frames = 0  # message frames received, all clients
        self.foreign = 0  # messages without the load generator's fields
        self.hist: list[int] = [0] * N_BUCKETS
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.win_lo_ms = math.inf
        self.win_hi_ms = math.inf
        self.errors = 0
        self.reopens = 0  # streaming/polling requests after the first
        self.resends = 0  # xhr_send retried after a dropped keep-alive connection
        self.sends = 0  # HTTP sends (xhr_send requests)
        self.last_error = ""
        self.cross_room = 0  # moves received from a sender of another room
        # Per observed room: a coarse latency histogram (stats.room_bucket_of).
        self.room_hist: dict[int, list[int]] = {}

    def now_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
