"""The ``bench`` subcommand: ``cursorshare bench [idle] ...``, the load client.

``cursorshare bench --url URL ...`` runs one load point against a running server (one room, or
``--rooms K``; one generator process, or ``--processes P``); ``cursorshare bench idle ...``
measures server memory per idle session. ``python -m cursorshare.bench`` is the same command.
Starting servers and comparing them is the comparison tool's job (``benchmarks/compare.py``
in the source tree), which is not part of the package.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .args import (
    add_generator_args,
    add_point_args,
    generator_processes,
    nonneg_float,
    positive_int,
)
from .idle import IdleConfig, IdleResult, run_idle
from .probes import run_sync
from .results import ROOM_COVERAGE_OK, LoadConfig, LoadResult
from .runner import run_load
from .transports import TRANSPORTS

__all__ = ["add_parser", "format_idle", "format_result", "main"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench`` (with its ``idle`` mode) on a subparsers object."""
    p = subparsers.add_parser(
        "bench",
        help="load-test a SockJS cursor server (the tutorial workload)",
        description=(
            "Load-test a SockJS cursor server: N clients in K rooms (client i in room i mod K, "
            "named in the session URL's room query), each moving at R Hz, every move delivered "
            "to every client of its room. Without a mode, runs one point against --url. "
            "Mode: idle (server memory per idle session). The comparison with sockjs-node is "
            "benchmarks/compare.py in the source tree (scripts/bench.sh)."
        ),
    )
    p.add_argument("--url", help="SockJS endpoint base URL, e.g. http://127.0.0.1:8080/ws")
    p.add_argument("--transport", "-t", choices=list(TRANSPORTS), default="websocket")
    add_point_args(p)
    p.add_argument("--clients", "-n", type=positive_int, default=10, help="N (default 10)")
    p.add_argument(
        "--rooms",
        "-k",
        type=positive_int,
        default=1,
        help="K rooms; client i joins room r<i mod K> (default 1: the server's default room)",
    )
    add_generator_args(p, cpus_flag="--pin-cpu", cpus_default="none")
    p.add_argument(
        "--server-pid",
        type=int,
        help="sample this server process's CPU and RSS (needs psutil: cursorshare[bench])",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_run)

    modes = p.add_subparsers(dest="bench_mode", metavar="MODE")
    i = modes.add_parser(
        "idle",
        help="server memory per idle session",
        description="Open K idle sessions against --url and report the server's RSS growth "
        "per session (needs --server-pid and psutil).",
    )
    i.add_argument("--url", dest="idle_url", required=True, help="SockJS endpoint base URL")
    i.add_argument(
        "--transport", "-t", dest="idle_transport", choices=list(TRANSPORTS), default="websocket"
    )
    i.add_argument("--sessions", "-k", type=positive_int, default=5000)
    i.add_argument("--server-pid", dest="idle_server_pid", type=int, required=True)
    i.add_argument(
        "--settle",
        type=nonneg_float,
        default=3.0,
        help="seconds to wait after the last session opened (default 3)",
    )
    i.add_argument("--json", action="store_true", help="print machine-readable JSON")
    i.set_defaults(func=cmd_idle)


def _cpus(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values) + " %"


def _fmt(v: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def format_result(r: LoadResult) -> str:
    lines = [
        f"cursorshare bench: {r.transport}, {r.clients} clients"
        + (f" in {r.rooms} rooms" if r.rooms > 1 else "")
        + f" x {r.rate:g} Hz, {r.processes} generator process"
        + ("es" if r.processes > 1 else "")
        + ", "
        f"{r.duration:.1f} s measured, {r.url}",
        f"  sessions     {r.connected}/{r.clients} open ({r.observers} observers)",
        f"  sent         {r.sent_per_s:,.1f} moves/s ({r.sent} in the window)",
        f"  delivered    {r.delivered_per_s:,.1f} messages/s",
        f"  expected     {r.expected_per_s:,.1f} deliveries/s ({r.expected} in the window)",
        f"  coverage     {_fmt(None if r.coverage is None else 100 * r.coverage, '.2f', ' %')}"
        f" ({r.covered}/{r.covered_expected} observer deliveries, superseded moves counted)",
        f"  latency      p50 {_fmt(r.latency_p50_ms)} ms  p95 {_fmt(r.latency_p95_ms)} ms  "
        f"p99 {_fmt(r.latency_p99_ms)} ms  max {_fmt(r.latency_max_ms)} ms "
        f"({r.latency_samples} samples)",
        f"  server       CPU {_fmt(r.server_cpu_percent, '.1f', ' %')}  "
        f"RSS {_fmt(r.server_rss_mib, '.1f', ' MiB')} "
        f"(peak {_fmt(r.server_rss_peak_mib, '.1f', ' MiB')})",
        f"  generator    CPU {r.gen_cpu_percent:.1f} % of one core"
        + ("" if r.processes == 1 else " (busiest of " + _cpus(r.gen_cpu_per_process) + ")")
        + f", send lag p99 {_fmt(r.send_lag_p99_ms)} ms, {r.skipped} moves skipped",
    ]
    if r.rooms > 1:
        lines.insert(
            2,
            f"  rooms        {r.rooms} ({r.rooms_observed} observed, {r.rooms_below} under "
            f"{ROOM_COVERAGE_OK:.0%} coverage); worst room: coverage "
            f"{_fmt(None if r.room_coverage_min is None else 100 * r.room_coverage_min, '.2f')}"
            f" %, p99 {_fmt(r.room_p99_max_ms)} ms; {r.cross_room} cross-room moves",
        )
    if r.other_cpu_percent is not None:
        lines.append(f"  others       CPU {r.other_cpu_percent:.1f} % (rest of the machine)")
    if r.http_requests_per_s is not None:
        lines.append(
            f"  requests     {r.http_requests_per_s:.0f}/s in the window (sends, polls, "
            f"reopened streams); {r.reopens} reopened polls/streams in the run"
        )
    lines += [f"  WARNING: {w}" for w in r.warnings]
    return "\n".join(lines)


def format_idle(r: IdleResult) -> str:
    lines = [
        f"cursorshare bench idle: {r.transport}, {r.connected}/{r.sessions} sessions open "
        f"in {r.open_seconds:.1f} s, {r.url}",
        f"  server RSS   {_fmt(r.rss_before_mib, '.1f')} MiB -> {_fmt(r.rss_after_mib, '.1f')} MiB",
        f"  per session  {_fmt(r.per_session_kib, '.2f', ' KiB')}",
    ]
    lines += [f"  WARNING: {w}" for w in r.warnings]
    return "\n".join(lines)


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False)


def cmd_run(args: argparse.Namespace) -> int:
    if not args.url:
        print("cursorshare bench: --url is required (or use the idle mode)", file=sys.stderr)
        return 2
    config = LoadConfig(
        url=args.url,
        transport=args.transport,
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        drain=args.drain,
        send_wait=args.send_wait_ms / 1000.0,
        observers=args.observers,
        server_pid=args.server_pid,
        rooms=args.rooms,
        processes=generator_processes(args.processes, args.gen_cpus),
        pin_cpus=args.gen_cpus,
    )
    try:
        result = run_sync(run_load(config))
    except RuntimeError as exc:
        print(f"cursorshare bench: {exc}", file=sys.stderr)
        return 2
    print(_dump(result.to_dict()) if args.json else format_result(result))
    return 0 if result.connected else 1


def cmd_idle(args: argparse.Namespace) -> int:
    config = IdleConfig(
        url=args.idle_url,
        transport=args.idle_transport,
        sessions=args.sessions,
        server_pid=args.idle_server_pid,
        settle=args.settle,
    )
    try:
        result = run_sync(run_idle(config))
    except RuntimeError as exc:
        print(f"cursorshare bench: {exc}", file=sys.stderr)
        return 2
    print(_dump(result.to_dict()) if args.json else format_idle(result))
    return 0 if result.connected else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m cursorshare.bench ARGS`` is ``cursorshare bench ARGS``."""
    parser = argparse.ArgumentParser(prog="python -m cursorshare")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
