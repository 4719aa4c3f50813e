"""Compare cursorshare with the sockjs-node tutorial server: ``python -m benchmarks.compare``.

For every (transport, N) point of the one-room grid and every (transport, N, K) point of the
many-rooms grid, and for every server, a fresh server process is started on a free port of
127.0.0.1 (pinned to one CPU with ``taskset``) and one load point is run against it with the
package's load client (one or several generator processes, pinned to other CPUs). Then,
optionally, an idle-memory point per server. The results print as markdown (``report``) and
can replace the results region of docs/benchmarks.md. ``scripts/bench.sh`` runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cursorshare.bench import IdleConfig, IdleResult, LoadConfig, LoadResult, run_idle, run_load
from cursorshare.bench.args import (
    add_generator_args,
    add_point_args,
    generator_processes,
    int_list,
    nonneg_float,
    optional_cpu,
    transport_list,
)
from cursorshare.bench.probes import machine_busy_seconds, raise_nofile_limit, run_sync
from cursorshare.bench.results import OTHER_CPU_LIMIT
from cursorshare.bench.transports import TRANSPORTS

from .points import CompareOptions, CompareResult, IdlePoint, Point
from .report import command_line, machine_facts, render_markdown, short_line, update_doc
from .servers import (
    CURSORSHARE_ENV,
    SERVERS,
    ServerSpec,
    cursorshare_command,
    default_sockjs_node_src,
    prepare_sockjs_node,
    running_server,
)

__all__ = ["build_parser", "main", "run_compare"]


async def run_compare(
    opts: CompareOptions, log: Callable[[str], None] = print, command: str = ""
) -> CompareResult:
    started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t_start = time.monotonic()
    most = max([*opts.clients, *(n for n, _ in opts.many_rooms)], default=0)
    raise_nofile_limit(max(4 * most, 3 * opts.idle_sessions) + 1024)
    specs: dict[str, ServerSpec] = {}
    if "cursorshare" in opts.servers:
        specs["cursorshare"] = ServerSpec(
            "cursorshare", opts.cursorshare_cmd or cursorshare_command(), env=CURSORSHARE_ENV
        )
    if "sockjs-node" in opts.servers:
        work = opts.sockjs_node_dir or Path(tempfile.gettempdir()) / "cursorshare-bench-sockjs-node"
        src = opts.sockjs_node_src or default_sockjs_node_src()
        work = await asyncio.to_thread(prepare_sockjs_node, src, work, log)
        node = shutil.which("node") or "node"
        specs["sockjs-node"] = ServerSpec(
            "sockjs-node", [node, "server.js", "{port}", "127.0.0.1"], cwd=str(work)
        )
    unknown = set(opts.servers) - set(specs)
    if unknown:
        raise ValueError(f"unknown server(s): {', '.join(sorted(unknown))}")
    points: list[Point] = []
    idle: list[IdlePoint] = []
    with tempfile.TemporaryDirectory(prefix="cursorshare-bench-") as tmp:
        log_dir = Path(tmp)
        grid = [(n, 1) for n in opts.clients] + list(opts.many_rooms)
        for transport in opts.transports:
            for n, k in grid:
                for name in opts.servers:
                    await wait_quiet(opts.quiet_wait, log)
                    log(
                        f"[{name}] {transport} N={n}" + (f" in {k} rooms" if k > 1 else "") + " ..."
                    )
                    result, error = await _one_point(specs[name], transport, n, k, opts, log_dir)
                    if result is not None:
                        log("    " + short_line(result))
                    else:
                        log(f"    FAILED: {error}")
                    points.append(Point(name, transport, n, result, error, rooms=k))
                    await asyncio.sleep(opts.pause)
        if opts.idle_sessions > 0:
            for transport in opts.idle_transports:
                for name in opts.servers:
                    await wait_quiet(opts.quiet_wait, log)
                    log(f"[{name}] idle {transport} x {opts.idle_sessions} ...")
                    idle_result, error = await _one_idle(specs[name], transport, opts, log_dir)
                    if idle_result is not None and idle_result.per_session_kib is not None:
                        log(
                            f"    {idle_result.connected} open, "
                            f"{idle_result.per_session_kib:.1f} KiB per session"
                        )
                    else:
                        log(f"    FAILED: {error}")
                    idle.append(IdlePoint(name, transport, opts.idle_sessions, idle_result, error))
                    await asyncio.sleep(opts.pause)
    return CompareResult(
        options=opts,
        points=points,
        idle=idle,
        machine=machine_facts(),
        command=command,
        started=started,
        seconds=time.monotonic() - t_start,
    )


async def wait_quiet(
    max_wait: float, log: Callable[[str], None], limit: float = OTHER_CPU_LIMIT
) -> bool:
    """Wait until the machine used < ``limit`` % of a core over one second (up to max_wait)."""
    deadline = time.monotonic() + max_wait
    busy = 0.0
    while True:
        before = machine_busy_seconds()
        await asyncio.sleep(1.0)
        busy = 100.0 * (machine_busy_seconds() - before)
        if busy < limit:
            return True
        if time.monotonic() >= deadline:
            log(f"    the machine is busy ({busy:.0f}% of a core used by others): going on")
            return False


async def _one_point(
    spec: ServerSpec, transport: str, n: int, rooms: int, opts: CompareOptions, log_dir: Path
) -> tuple[LoadResult | None, str]:
    with running_server(spec, opts.server_cpu, log_dir) as server:
        try:
            await server.wait_ready()
            result = await run_load(
                LoadConfig(
                    url=server.url,
                    transport=transport,
                    clients=n,
                    rate=opts.rate,
                    duration=opts.duration,
                    warmup=opts.warmup,
                    drain=opts.drain,
                    send_wait=opts.send_wait,
                    # A many-rooms point observes at least one client of every room.
                    observers=None if opts.observers is None else max(opts.observers, rooms),
                    server_pid=server.pid,
                    rooms=rooms,
                    processes=opts.processes,
                    pin_cpus=opts.gen_cpus,
                )
            )
        except Exception as exc:
            return None, f"{exc!r} {server.tail(500)}".strip()
        if server.proc.poll() is not None:
            return result, f"server exited with {server.proc.returncode}"
        return result, ""


async def _one_idle(
    spec: ServerSpec, transport: str, opts: CompareOptions, log_dir: Path
) -> tuple[IdleResult | None, str]:
    with running_server(spec, opts.server_cpu, log_dir) as server:
        try:
            await server.wait_ready()
            await asyncio.sleep(1.0)  # let the server finish starting before the baseline
            result = await run_idle(
                IdleConfig(
                    url=server.url,
                    transport=transport,
                    sessions=opts.idle_sessions,
                    server_pid=server.pid,
                )
            )
        except Exception as exc:
            return None, f"{exc!r} {server.tail(500)}".strip()
        return result, ""


def _server_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in SERVERS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"unknown server(s) {', '.join(bad)}; choose from {', '.join(SERVERS)}"
        )
    return values


def _rooms_list(text: str) -> list[tuple[int, int]]:
    """``N:K,N:K``: many-rooms points, N clients in K rooms; empty or ``none`` for none."""
    if text.strip().lower() in ("", "none"):
        return []
    points = []
    for item in text.split(","):
        n, sep, k = item.strip().partition(":")
        if not sep or not n.isdigit() or not k.isdigit() or not 1 < int(k) <= int(n):
            raise argparse.ArgumentTypeError(f"{item!r} is not N:K with 1 < K <= N")
        points.append((int(n), int(k)))
    return points


def build_parser() -> argparse.ArgumentParser:
    c = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description=(
            "Start cursorshare and the sockjs-node tutorial server on free ports of 127.0.0.1 "
            "(pinned with taskset -c --server-cpu), run the same points against each with the "
            "cursorshare load client (pinned to --gen-cpus) and print side-by-side markdown "
            "tables: one room, many rooms, idle memory."
        ),
    )
    c.add_argument(
        "--transports",
        type=transport_list,
        default=list(TRANSPORTS),
        help="comma-separated (default: all four)",
    )
    c.add_argument(
        "--clients",
        "-n",
        type=int_list,
        default=[50, 200, 500],
        help="N values of the one-room table, comma-separated (default 50,200,500)",
    )
    c.add_argument(
        "--many-rooms",
        type=_rooms_list,
        default=[(1000, 200)],
        help="N:K points of the many-rooms table, comma-separated; 'none' to skip "
        "(default 1000:200)",
    )
    add_point_args(c, duration=15.0, warmup=3.0, observers=50)
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
        type=transport_list,
        default=["websocket"],
        help="transports for the idle measurement (default websocket)",
    )
    c.add_argument(
        "--server-cpu",
        type=optional_cpu,
        default=0,
        help="CPU for the servers (taskset -c); 'none' to not pin (default 0)",
    )
    add_generator_args(c, cpus_flag="--gen-cpus", cpus_default="1")
    c.add_argument(
        "--cursorshare-cmd",
        help="command that starts cursorshare, with {port} (default: this Python's "
        "'-m cursorshare serve --host 127.0.0.1 --port {port}')",
    )
    c.add_argument(
        "--sockjs-node-src",
        type=Path,
        help="folder with server.js and package*.json (default: benchmarks/sockjs-node)",
    )
    c.add_argument(
        "--sockjs-node-dir",
        type=Path,
        help="scratch folder where it is installed with npm ci "
        "(default: $TMPDIR/cursorshare-bench-sockjs-node)",
    )
    c.add_argument(
        "--quiet-wait",
        type=nonneg_float,
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
    return c


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_out = sys.stderr if args.json else sys.stdout

    def log(text: str) -> None:
        print(text, file=log_out, flush=True)

    opts = CompareOptions(
        transports=args.transports,
        clients=args.clients,
        many_rooms=args.many_rooms,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        drain=args.drain,
        send_wait=args.send_wait_ms / 1000.0,
        observers=args.observers,
        servers=args.servers,
        idle_sessions=args.idle_sessions,
        idle_transports=args.idle_transports,
        server_cpu=args.server_cpu,
        gen_cpus=args.gen_cpus,
        processes=generator_processes(args.processes, args.gen_cpus),
        cursorshare_cmd=shlex.split(args.cursorshare_cmd) if args.cursorshare_cmd else None,
        sockjs_node_src=args.sockjs_node_src,
        sockjs_node_dir=args.sockjs_node_dir,
        quiet_wait=args.quiet_wait,
    )
    result = run_sync(run_compare(opts, log=log, command=command_line()))
    markdown = render_markdown(result)
    dump = json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(dump + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.update_doc:
        update_doc(args.update_doc, markdown)
    print(dump if args.json else "\n" + markdown)
    return 0 if any(p.result is not None for p in result.points) or result.idle else 1


if __name__ == "__main__":
    sys.exit(main())
