"""The many-rooms workload (issue #14) over every transport, against both servers.

7 clients in 3 rooms (client i in room i mod 3: rooms of 3, 2 and 2 members) at 10 Hz for a
short window. Asserted: the accounting is per room (each room expects only its own members'
moves), every room is observed and its moves arrive, and no client ever receives a move of
another room. No timing assertions. A server that ignored the ``room`` query would put all
seven clients in one room and every observer would book cross-room moves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cursorshare.bench import LoadConfig, LoadResult, run_load
from cursorshare.bench.transports import TRANSPORTS

from .conftest import ROOT

CLIENTS = 7
ROOMS = 3


def _point(url: str, pid: int, transport: str, processes: int = 1) -> LoadConfig:
    return LoadConfig(
        url=url,
        transport=transport,
        clients=CLIENTS,
        rooms=ROOMS,
        rate=10.0,
        duration=1.5,
        warmup=0.5,
        drain=1.0,
        server_pid=pid,
        processes=processes,
    )


def _assert_per_room_accounting(result: LoadResult) -> None:
    assert result.connected == CLIENTS, result.last_error
    assert result.cross_room == 0, result.last_error
    assert result.errors == 0, result.last_error
    assert result.rooms == ROOMS
    assert [r.members for r in result.per_room] == [3, 2, 2]
    assert result.rooms_observed == ROOMS
    for room in result.per_room:
        assert room.connected == room.members
        assert room.observers == room.members  # every client observes by default
        assert room.sent > 0
        # Each receiver expects every window move of its own room, and only those.
        assert room.covered_expected == room.observers * room.sent
        assert room.coverage is not None and room.coverage > 0.5, room
        assert room.latency_p99_ms is not None and room.latency_p99_ms >= 0
    assert result.sent == sum(r.sent for r in result.per_room)
    assert result.expected == sum(r.sent * r.connected for r in result.per_room)
    assert result.expected < result.sent * CLIENTS  # not the one-room count
    assert result.covered_expected == sum(r.covered_expected for r in result.per_room)
    assert result.room_coverage_min is not None
    assert result.room_coverage_min == min(r.coverage or 0.0 for r in result.per_room)
    assert result.latency_samples > 0


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_rooms_against_cursorshare(
    cursorshare_server: tuple[str, int], transport: str
) -> None:
    url, pid = cursorshare_server
    _assert_per_room_accounting(await run_load(_point(url, pid, transport)))


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_rooms_against_sockjs_node(
    sockjs_node_server: tuple[str, int], transport: str
) -> None:
    url, pid = sockjs_node_server
    _assert_per_room_accounting(await run_load(_point(url, pid, transport)))


async def test_rooms_over_two_generator_processes(cursorshare_server: tuple[str, int]) -> None:
    """Two spawned processes own alternate clients; moves cross processes within a room and
    are timed on the one clock (a wrong origin would give absurd latencies)."""
    url, pid = cursorshare_server
    result = await run_load(_point(url, pid, "websocket", processes=2))
    _assert_per_room_accounting(result)
    assert result.processes == 2
    assert len(result.gen_cpu_per_process) == 2
    assert result.latency_max_ms is not None and 0 <= result.latency_max_ms < 10_000
    assert result.gen_cpu_percent == max(result.gen_cpu_per_process)


def test_the_bench_command_runs_rooms(cursorshare_server: tuple[str, int]) -> None:
    """``cursorshare bench --rooms K --json`` end to end, as CI's smoke run."""
    url, _ = cursorshare_server
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cursorshare",
            "bench",
            "--url",
            url,
            "--transport",
            "xhr-polling",
            "--clients",
            "4",
            "--rooms",
            "2",
            "--rate",
            "10",
            "--duration",
            "1",
            "--warmup",
            "0.3",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["rooms"] == 2
    assert report["connected"] == 4
    assert report["cross_room"] == 0
    assert [r["members"] for r in report["per_room"]] == [2, 2]
    assert all(r["covered_expected"] > 0 for r in report["per_room"])
