"""The ``bench`` subcommand: ``cursorshare bench [compare|idle] ...``.

``cursorshare bench --url URL ...`` runs one load point against a running server;
``cursorshare bench compare ...`` starts cursorshare and the sockjs-node tutorial server itself
and prints both side by side; ``cursorshare bench idle ...`` measures server memory per idle
session. ``python -m cursorshare.bench`` is the same command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from .clients import TRANSPORTS
from .compare import (
    SERVERS,
    CompareOptions,
    command_line,
    render_markdown,
    run_compare,
    update_doc,
)
from .runner import (
    IdleConfig,
    IdleResult,
    LoadConfig,
    LoadResult,
    pin_to_cpu,
    run_idle,
    run_load,
    run_sync,
)

__all__ = ["add_parser", "format_idle", "format_result", "main"]


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _nonneg_float(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("need one or more integers >= 1")
    return values


def _transport_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in TRANSPORTS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"unknown transport(s) {', '.join(bad)}; choose from {', '.join(TRANSPORTS)}"
        )
    return values


def _server_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in SERVERS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"unknown server(s) {', '.join(bad)}; choose from {', '.join(SERVERS)}"
        )
    return values


def _optional_cpu(text: str) -> int | None:
    return None if text.lower() in ("", "none", "-") else int(text)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench`` (with its ``compare`` and ``idle`` modes) on a subparsers object."""
    p = subparsers.add_parser(
        "bench",
        help="load-test a SockJS cursor server (the tutorial workload)",
        description=(
            "Load-test a SockJS cursor server: N clients in one room, each moving at R Hz, "
            "every move delivered to every client. Without a mode, runs one point against "
            "--url. Modes: compare (cursorshare vs the sockjs-node tutorial server), idle "
            "(server memory per idle session)."
        ),
    )
    p.add_argument("--url", help="SockJS endpoint base URL, e.g. http://127.0.0.1:8080/ws")
    p.add_argument("--transport", "-t", choices=list(TRANSPORTS), default="websocket")
    _add_point_args(p)
    p.add_argument("--clients", "-n", type=_positive_int, default=10, help="N (default 10)")
    p.add_argument("--server-pid", type=int, help="sample this server process's CPU and RSS")
    p.add_argument(
        "--pin-cpu",
        type=int,
        default=None,
        help="pin the load generator to this CPU (os.sched_setaffinity)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_run)

    modes = p.add_subparsers(dest="bench_mode", metavar="MODE")

    c = modes.add_parser(
        "compare",
        help="start cursorshare and the sockjs-node tutorial server and compare them",
        description=(
            "Start each server on a free port of 127.0.0.1 (pinned with taskset -c "
            "--server-cpu), run the same points against each from this process (pinned to "
            "--gen-cpu) and print a side-by-side markdown table with each server's "
            "saturation N."
        ),
    )
    c.add_argument(
        "--transports",
        type=_transport_list,
        default=list(TRANSPORTS),
        help="comma-separated (default: all four)",
    )
    c.add_argument(
        "--clients",
        "-n",
        dest="clients_list",
        type=_int_list,
        default=[50, 200, 500],
        help="comma-separated N values (default 50,200,500)",
    )
    _add_point_args(c, duration=15.0, warmup=3.0, observers=50)
    c.add_argument(
        "--servers",
        type=_server_list,
        default=list(SERVERS),
        help="comma-separated (default cursorshare,sockjs-node)",
    )
    c.add_argument(
        "--idle-sessions",
        type=int,
        default=0,
        help="also measure server RSS per idle session with this many sessions (0: skip)",
    )
    c.add_argument(
        "--idle-transports",
        type=_transport_list,
        default=["websocket"],
        help="transports for the idle measurement (default websocket)",
    )
    c.add_argument(
        "--server-cpu",
        type=_optional_cpu,
        default=0,
        help="CPU for the servers (taskset -c); 'none' to not pin (default 0)",
    )
    c.add_argument(
        "--gen-cpu",
        type=_optional_cpu,
        default=1,
        help="CPU for the load generator; 'none' to not pin (default 1)",
    )
    c.add_argument(
        "--cursorshare-cmd",
        help="command that starts cursorshare, with {port} (default: this Python's "
        "'-m cursorshare serve --host 127.0.0.1 --port {port}')",
    )
    c.add_argument(
        "--sockjs-node-src",
        type=Path,
        help="folder with server.js and package*.json (default: bench/sockjs-node)",
    )
    c.add_argument(
        "--sockjs-node-dir",
        type=Path,
        help="scratch folder where it is installed with npm ci "
        "(default: $TMPDIR/cursorshare-bench-sockjs-node)",
    )
    c.add_argument(
        "--quiet-wait",
        type=_nonneg_float,
        default=60.0,
        help="before each point, wait up to this many seconds for the rest of the machine to "
        "go quiet (default 60)",
    )
    c.add_argument("--json", action="store_true", help="print machine-readable JSON")
    c.add_argument("--out", type=Path, help="also write the JSON results to this file")
    c.add_argument("--markdown", type=Path, help="also write the markdown report to this file")
    c.add_argument(
        "--update-doc",
        type=Path,
        help="replace the <!-- bench:begin/end --> region of this file with the report",
    )
    c.set_defaults(func=cmd_compare)

    i = modes.add_parser(
        "idle",
        help="server memory per idle session",
        description="Open K idle sessions against --url and report the server's RSS growth "
        "per session (needs --server-pid).",
    )
    i.add_argument("--url", dest="idle_url", required=True, help="SockJS endpoint base URL")
    i.add_argument(
        "--transport", "-t", dest="idle_transport", choices=list(TRANSPORTS), default="websocket"
    )
    i.add_argument("--sessions", "-k", type=_positive_int, default=5000)
    i.add_argument("--server-pid", dest="idle_server_pid", type=int, required=True)
    i.add_argument(
        "--settle",
        type=_nonneg_float,
        default=3.0,
        help="seconds to wait after the last session opened (default 3)",
    )
    i.add_argument("--json", action="store_true", help="print machine-readable JSON")
    i.set_defaults(func=cmd_idle)


def _add_point_args(
    p: argparse.ArgumentParser,
    *,
    duration: float = 10.0,
    warmup: float = 2.0,
    observers: int | None = None,
) -> None:
    p.add_argument(
        "--rate",
        "-r",
        type=_positive_float,
        default=30.0,
        help="moves per second per client (default 30)",
    )
    p.add_argument(
        "--duration",
        "-d",
        type=_positive_float,
        default=duration,
        help=f"measured seconds (default {duration:g})",
    )
    p.add_argument(
        "--warmup",
        "-w",
        type=_nonneg_float,
        default=warmup,
        help=f"unmeasured seconds before the window (default {warmup:g})",
    )
    p.add_argument(
        "--drain",
        type=_nonneg_float,
        default=1.0,
        help="seconds after the last send for moves in flight to land (default 1)",
    )
    p.add_argument(
        "--observers",
        type=_positive_int,
        default=observers,
        help="only this many clients (spread over the N) parse and time every message; the "
        "others receive everything but only count it (default: "
        + ("all" if observers is None else str(observers))
        + ")",
    )


def _fmt(v: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def format_result(r: LoadResult) -> str:
    lines = [
        f"cursorshare bench: {r.transport}, {r.clients} clients x {r.rate:g} Hz, "
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
        f"  generator    CPU {r.gen_cpu_percent:.1f} % of one core, send lag "
        f"p99 {_fmt(r.send_lag_p99_ms)} ms, {r.skipped} moves skipped",
    ]
    if r.other_cpu_percent is not None:
        lines.append(f"  others       CPU {r.other_cpu_percent:.1f} % (rest of the machine)")
    if r.reopens:
        lines.append(f"  requests     {r.reopens} reopened polls/streams")
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
        print(
            "cursorshare bench: --url is required (or use the compare/idle modes)", file=sys.stderr
        )
        return 2
    if args.pin_cpu is not None and not pin_to_cpu(args.pin_cpu):
        print(f"cursorshare bench: cannot pin to CPU {args.pin_cpu}", file=sys.stderr)
    config = LoadConfig(
        url=args.url,
        transport=args.transport,
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        drain=args.drain,
        observers=args.observers,
        server_pid=args.server_pid,
    )
    result = run_sync(run_load(config))
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
    result = run_sync(run_idle(config))
    print(_dump(result.to_dict()) if args.json else format_idle(result))
    return 0 if result.connected else 1


def cmd_compare(args: argparse.Namespace) -> int:
    log_out = sys.stderr if args.json else sys.stdout

    def log(text: str) -> None:
        print(text, file=log_out, flush=True)

    if args.gen_cpu is not None and not pin_to_cpu(args.gen_cpu):
        log(f"cannot pin the load generator to CPU {args.gen_cpu}: not pinning")
        args.gen_cpu = None
    opts = CompareOptions(
        transports=args.transports,
        clients=args.clients_list,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        drain=args.drain,
        observers=args.observers,
        servers=args.servers,
        idle_sessions=args.idle_sessions,
        idle_transports=args.idle_transports,
        server_cpu=args.server_cpu,
        gen_cpu=args.gen_cpu,
        cursorshare_cmd=shlex.split(args.cursorshare_cmd) if args.cursorshare_cmd else None,
        sockjs_node_src=args.sockjs_node_src,
        sockjs_node_dir=args.sockjs_node_dir,
        quiet_wait=args.quiet_wait,
    )
    result = run_sync(run_compare(opts, log=log, command=command_line()))
    markdown = render_markdown(result)
    if args.out:
        args.out.write_text(_dump(result.to_dict()) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.update_doc:
        update_doc(args.update_doc, markdown)
    if args.json:
        print(_dump(result.to_dict()))
    else:
        print()
        print(markdown)
    return 0 if any(p.result is not None for p in result.points) or result.idle else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m cursorshare.bench ARGS`` is ``cursorshare bench ARGS``."""
    parser = argparse.ArgumentParser(prog="python -m cursorshare")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
