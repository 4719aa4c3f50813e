"""Merging generator processes' results: per-room coverage, and the generator-bound flag."""

from __future__ import annotations

from typing import Any

import pytest

from cursorshare.bench import stats
from cursorshare.bench.generator import PartResult
from cursorshare.bench.results import LoadConfig, WindowSamples, observer_indices, summarize


def _part(
    indices: list[int],
    *,
    cpu: float = 0.2,
    window: float = 1.0,
    lag_ms: float = 1.0,
    slots: int = 100,
    skipped: int = 0,
) -> PartResult:
    lag = stats.LatencyHistogram()
    lag.record_many([lag_ms] * slots)
    return PartResult(
        indices=indices,
        connected=list(indices),
        first_seq=[10] * len(indices),
        last_seq=[19] * len(indices),  # 10 window moves per client
        hist=[0] * stats.N_BUCKETS,
        lag_hist=lag.counts,
        slots=slots,
        skipped=skipped,
        cpu_seconds=cpu * window,
        window=window,
    )


def test_coverage_is_per_room_across_processes() -> None:
    # 4 clients in 2 rooms: room 0 = {0, 2} (members 0, 1), room 1 = {1, 3}.
    config = LoadConfig(url="u", clients=4, rooms=2, processes=2)
    a, b = _part([0, 2]), _part([1, 3])
    a.last_seen = {0: [19, 14]}  # client 0 (room 0): all of client 0, client 2 up to seq 14
    b.last_seen = {1: [19, 19], 3: [19, -1]}  # room 1: client 3 missed all of client 3's moves
    result = summarize(config, [a, b], WindowSamples(start=0.0, end=1.0))
    room0, room1 = result.per_room
    assert (room0.members, room0.observers, room0.sent) == (2, 1, 20)
    assert (room0.covered, room0.covered_expected) == (10 + 5, 20)
    assert (room1.covered, room1.covered_expected) == (20 + 10, 40)
    assert result.sent == 40
    assert result.expected == 20 * 2 + 20 * 2  # each room's moves to each of its 2 members
    assert result.covered == 45 and result.covered_expected == 60
    assert result.room_coverage_min == pytest.approx(0.75)
    assert result.rooms_below == 2
    assert not result.generator_bound


@pytest.mark.parametrize(
    ("busy", "expected"),
    [
        ({"cpu": 0.95}, "load generator process 2 CPU at 95%"),
        ({"lag_ms": 25.0}, "load generator process 2 send schedule slipped"),
        ({"skipped": 5}, "load generator process 2 skipped 5 of 100"),
    ],
)
def test_any_saturated_process_marks_the_point(busy: dict[str, Any], expected: str) -> None:
    config = LoadConfig(url="u", clients=4, processes=2)
    quiet = _part([0, 2])
    loaded = _part([1, 3], **busy)
    result = summarize(config, [quiet, loaded], WindowSamples(start=0.0, end=1.0))
    assert result.generator_bound
    assert any(w.startswith(expected) for w in result.warnings), result.warnings
    assert result.processes == 2


def test_a_single_process_speaks_of_the_load_generator() -> None:
    config = LoadConfig(url="u", clients=2)
    result = summarize(config, [_part([0, 1], cpu=0.97)], WindowSamples(start=0.0, end=1.0))
    assert result.warnings[0].startswith("load generator CPU at 97%")
    assert result.gen_cpu_percent == pytest.approx(97.0)


def test_observers_are_one_per_room_in_turn() -> None:
    assert observer_indices(10, 3) == [0, 1, 2]  # rooms 0, 1, 2 of K >= 3
    assert observer_indices(4, None) == [0, 1, 2, 3]
    assert observer_indices(4, 99) == [0, 1, 2, 3]


def test_room_histogram_percentiles() -> None:
    counts = [0] * stats.ROOM_BUCKETS
    for ms in (0.25, 50.0, 150.0, 2500.0):
        counts[stats.room_bucket_of(ms)] += 1
    assert stats.room_percentile(counts, 25) == pytest.approx(0.25, abs=0.05)
    assert stats.room_percentile(counts, 50) == pytest.approx(50.0, abs=0.05)
    assert stats.room_percentile(counts, 75) == pytest.approx(150.0, abs=0.5)
    assert stats.room_percentile(counts, 100) == pytest.approx(2500.0, abs=50.0)
    assert stats.room_bucket_of(10**9) == stats.ROOM_BUCKETS - 1
    assert stats.room_percentile([0] * stats.ROOM_BUCKETS, 50) is None


@pytest.mark.parametrize(("transport", "expected"), [("xhr-polling", 150.0), ("websocket", None)])
def test_http_requests_per_second_add_up_over_processes(
    transport: str, expected: float | None
) -> None:
    config = LoadConfig(url="u", transport=transport, clients=4, rooms=2, processes=2)
    a, b = _part([0, 2], window=2.0), _part([1, 3], window=2.0)
    a.window_requests, b.window_requests = 100, 200  # sends, polls and reopened streams
    result = summarize(config, [a, b], WindowSamples(start=0.0, end=2.0))
    assert result.http_requests_per_s == expected
