"""Unit tests of the load generator's measurement code: percentiles and coverage."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.compare import build_parser as build_compare_parser
from benchmarks.points import Point, saturation
from cursorshare.bench import stats
from cursorshare.bench.cli import add_parser, format_result
from cursorshare.bench.clients import Tally
from cursorshare.bench.results import LoadResult
from cursorshare.bench.stats import LatencyHistogram, covered_moves
from cursorshare.bench.transports import WebSocketClient


def test_percentiles_of_uniform_values() -> None:
    h = LatencyHistogram()
    h.record_many(float(v) for v in range(1, 101))  # 1..100 ms
    assert h.count == 100
    p50, p95, p99 = h.percentile(50), h.percentile(95), h.percentile(99)
    assert p50 is not None and p95 is not None and p99 is not None
    assert p50 == pytest.approx(50.0, abs=0.5)
    assert p95 == pytest.approx(95.0, abs=0.5)
    assert p99 == pytest.approx(99.0, abs=0.5)
    assert h.percentile(100) == pytest.approx(100.0, abs=0.5)
    assert h.mean() == pytest.approx(50.5)
    assert h.max_ms == 100.0


def test_percentile_precision_and_edges() -> None:
    h = LatencyHistogram()
    assert h.percentile(99) is None
    assert h.mean() is None
    h.record(0.123)
    assert h.percentile(50) == pytest.approx(0.123, abs=0.005)  # 10 µs buckets below 100 ms
    h.record(-0.01)  # a clock-rounding artefact lands in the first bucket
    assert h.percentile(1) == pytest.approx(0.005, abs=0.005)
    h.record(10**9)  # beyond the last bucket: clamped, still counted
    assert h.count == 3
    assert h.percentile(100) == pytest.approx(stats.COARSE_LIMIT_MS, abs=1)
    with pytest.raises(ValueError):
        h.percentile(0)


def test_percentile_skewed_and_merge() -> None:
    a = LatencyHistogram()
    b = LatencyHistogram()
    a.record_many([1.0] * 990)
    b.record_many([250.0] * 10)
    a.merge(b)
    assert a.count == 1000
    assert a.percentile(99) == pytest.approx(1.0, abs=0.01)
    assert a.percentile(99.1) == pytest.approx(250.5, abs=0.5)
    assert a.max_ms == 250.0


def test_bucket_bounds_are_contiguous() -> None:
    previous_high = 0.0
    for i in (0, 1, stats.FINE_BUCKETS - 1, stats.FINE_BUCKETS, stats.N_BUCKETS - 1):
        low, high = stats.bucket_bounds(i)
        assert low < high
        assert stats.bucket_of((low + high) / 2) == i
        if i in (1, stats.FINE_BUCKETS):
            assert low == pytest.approx(previous_high)
        previous_high = high


def test_covered_moves_counts_superseded_moves() -> None:
    # The sender sent seq 10..19 inside the window.
    assert covered_moves(19, 10, 19) == 10  # got the last: everything covered
    assert covered_moves(25, 10, 19) == 10  # got a later one (after the window): same
    assert covered_moves(14, 10, 19) == 5  # 10..14 covered (some maybe superseded), 15..19 not
    assert covered_moves(9, 10, 19) == 0  # only warmup moves arrived
    assert covered_moves(-1, 10, 19) == 0  # nothing arrived
    assert covered_moves(5, 10, 9) == 0  # the sender sent nothing in the window


def test_coverage_over_receivers_and_senders() -> None:
    windows = [(0, 9), (5, 14), (0, -1)]  # 10 + 10 + 0 window moves
    receivers = [
        [9, 14, -1],  # got the latest of both: 20 of 20
        [4, 14, 3],  # sender 0 up to seq 4 only: 5 + 10
        [-1, 7, -1],  # sender 1's seq 5..7: 3
    ]
    covered, expected = stats.coverage(receivers, windows)
    assert expected == 3 * 20
    assert covered == 20 + 15 + 3


def test_account_books_latency_and_last_seen() -> None:
    tally = Tally(t0=0.0)
    tally.win_lo_ms, tally.win_hi_ms = 100.0, 200.0
    client = WebSocketClient.__new__(WebSocketClient)  # no session needed for accounting
    client.tally = tally
    client.rooms, client.room, client.n_senders = 1, 0, 2
    client.last_seen = [-1, -1]
    client.room_hist = [0] * stats.ROOM_BUCKETS
    msgs = [
        '{"x":1,"y":2,"t":150.0,"s":3,"c":0,"sender":"a","color":"#fff"}',
        '{"x":1,"y":2,"t":90.0,"s":7,"c":1,"sender":"b","color":"#fff"}',  # before the window
        '{"x":1,"y":2,"sender":"z","color":"#fff"}',  # not ours
        '{"x":1,"y":2,"t":151.0,"s":4,"c":5,"sender":"q","color":"#fff"}',  # unknown sender
    ]
    client._account(msgs, now_ms=152.5)
    assert tally.arrivals == 4
    assert tally.foreign == 2
    assert client.last_seen == [3, 7]
    h = LatencyHistogram()
    h.counts = tally.hist
    assert h.count == 1
    assert h.percentile(50) == pytest.approx(2.5, abs=0.01)


def test_counting_client_counts_messages_in_frames() -> None:
    tally = Tally(t0=0.0)
    client = WebSocketClient.__new__(WebSocketClient)
    client.tally = tally
    client.last_seen = None
    frame = 'a["{\\"x\\":1,\\"sender\\":\\"a\\"}","{\\"x\\":2,\\"sender\\":\\"b\\"}"]'
    client._messages_str(frame)
    client._messages_bytes(b"xx" + frame.encode() + b"\n", 2, 2 + len(frame))
    assert tally.arrivals == 4
    assert tally.frames == 2


def _result(clients: int, coverage: float, p99: float, bound: bool = False) -> LoadResult:
    return LoadResult(
        transport="websocket",
        url="u",
        clients=clients,
        connected=clients,
        observers=clients,
        rate=30.0,
        duration=1.0,
        sent=1,
        sent_per_s=1.0,
        delivered=1,
        delivered_per_s=1.0,
        expected=1,
        expected_per_s=1.0,
        covered=1,
        covered_expected=1,
        coverage=coverage,
        latency_samples=1,
        latency_p50_ms=1.0,
        latency_p95_ms=1.0,
        latency_p99_ms=p99,
        latency_max_ms=1.0,
        latency_mean_ms=1.0,
        send_lag_p99_ms=1.0,
        send_lag_max_ms=1.0,
        skipped=0,
        server_cpu_percent=1.0,
        server_rss_mib=1.0,
        server_rss_peak_mib=1.0,
        gen_cpu_percent=95.0 if bound else 10.0,
        other_cpu_percent=None,
        errors=0,
        last_error="",
        reopens=0,
        resends=0,
        foreign=0,
        warnings=["load generator CPU at 95%"] if bound else [],
    )


def test_saturation() -> None:
    pts = [
        Point("a", "websocket", 50, _result(50, 1.0, 5.0)),
        Point("a", "websocket", 200, _result(200, 0.995, 80.0)),
        Point("a", "websocket", 500, _result(500, 0.5, 900.0, bound=True)),
        Point("b", "websocket", 50, _result(50, 0.9, 5.0)),
        Point("c", "websocket", 50, _result(50, 1.0, 5.0)),
        Point("c", "websocket", 200, _result(200, 1.0, 50.0)),
    ]
    assert saturation(pts, "a", "websocket") == "200 †"
    assert saturation(pts, "b", "websocket") == "< 50"
    assert saturation(pts, "c", "websocket") == ">= 200"
    assert saturation(pts, "c", "eventsource") == "n/a"
    assert "coverage" in format_result(_result(50, 1.0, 5.0))


def test_parser_modes() -> None:
    parser = argparse.ArgumentParser(prog="cursorshare")
    add_parser(parser.add_subparsers(dest="command"))
    run = parser.parse_args(
        ["bench", "--url", "http://127.0.0.1:1/ws", "-n", "7", "-t", "eventsource", "--rate", "10"]
    )
    assert (run.clients, run.transport, run.rate, run.func.__name__) == (
        7,
        "eventsource",
        10.0,
        "cmd_run",
    )
    cmp = build_compare_parser().parse_args(
        ["--transports", "websocket,xhr-polling", "--clients", "5,10", "--duration", "3"]
    )
    assert cmp.transports == ["websocket", "xhr-polling"]
    assert cmp.clients == [5, 10]
    assert cmp.duration == 3.0
    idle = parser.parse_args(
        ["bench", "idle", "--url", "http://x/ws", "--server-pid", "1", "-k", "20"]
    )
    assert (idle.func.__name__, idle.sessions) == ("cmd_idle", 20)
    with pytest.raises(SystemExit):
        build_compare_parser().parse_args(["--transports", "carrier-pigeon"])
