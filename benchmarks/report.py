"""The comparison's markdown: the machine, the one-room and many-rooms tables, the notes.

Every figure in docs/benchmarks.md's results region comes from here (``--update-doc``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cursorshare.bench import LoadResult
from cursorshare.bench.results import OTHER_CPU_LIMIT

from .points import SATURATION_COVERAGE, SATURATION_P99_MS, CompareResult, Point, saturation

__all__ = [
    "DOC_BEGIN",
    "DOC_END",
    "command_line",
    "machine_facts",
    "render_markdown",
    "short_line",
    "update_doc",
]

DOC_BEGIN = "<!-- bench:begin -->"
DOC_END = "<!-- bench:end -->"


def _run_text(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip()


def machine_facts() -> dict[str, str]:
    """CPU, memory and software versions, from ``lscpu``, ``nproc`` and ``free -h``."""
    facts: dict[str, str] = {}
    lscpu = _run_text(["lscpu"])
    for key in (
        "Model name",
        "CPU(s)",
        "Thread(s) per core",
        "Hypervisor vendor",
        "L2 cache",
        "L3 cache",
    ):
        m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.MULTILINE)
        if m:
            facts[f"lscpu {key}"] = m.group(1).strip()
    facts["nproc --all"] = _run_text(["nproc", "--all"])
    free = _run_text(["free", "-h"])
    m = re.search(r"^Mem:\s+(\S+)", free, re.MULTILINE)
    if m:
        facts["free -h total"] = m.group(1)
    facts["kernel"] = platform.release()
    facts["python"] = platform.python_version()
    for dist in ("aiohttp", "orjson", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            facts[dist] = importlib.metadata.version(dist)
    node = shutil.which("node")
    if node:
        facts["node"] = _run_text([node, "--version"])
    return facts


def _f(v: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def short_line(r: LoadResult) -> str:
    rooms = (
        f" rooms {r.rooms} worst coverage {_f(r.room_coverage_min, '{:.3f}')} "
        f"worst p99 {_f(r.room_p99_max_ms, '{:.1f}')} ms cross-room {r.cross_room}"
        if r.rooms > 1
        else ""
    )
    return (
        f"sent {r.sent_per_s:.0f}/s delivered {r.delivered_per_s:.0f}/s "
        f"(expected {r.expected_per_s:.0f}/s) coverage {_f(r.coverage, '{:.3f}')} "
        f"p50/p95/p99 {_f(r.latency_p50_ms, '{:.1f}')}/{_f(r.latency_p95_ms, '{:.1f}')}/"
        f"{_f(r.latency_p99_ms, '{:.1f}')} ms{rooms} server CPU {_f(r.server_cpu_percent)}% "
        f"RSS {_f(r.server_rss_mib)} MiB gen CPU {r.gen_cpu_percent:.0f}%"
        + ("" if not r.warnings else "  [" + "; ".join(r.warnings) + "]")
    )


def _latency(r: LoadResult) -> str:
    return (
        f"{_f(r.latency_p50_ms, '{:.1f}')} / {_f(r.latency_p95_ms, '{:.1f}')} / "
        f"{_f(r.latency_p99_ms, '{:.1f}')}"
    )


def _gen(r: LoadResult) -> str:
    return _f(r.gen_cpu_percent) + (" †" if r.generator_bound else "")


def _cells(point: Point | None, many: bool, notes: list[str], label: str) -> list[str]:
    width = 10 if many else 8
    r = point.result if point else None
    if point and point.error:
        notes.append(f"{label}: {point.error[:200]}")
    if r is None:
        return ["failed" if point else "-"] + ["-"] * (width - 1)
    notes += [f"{label}: {w}" for w in r.warnings]
    cells = [_f(r.sent_per_s), _f(r.delivered_per_s), _f(r.http_requests_per_s)]
    cells.append(_f(r.coverage, "{:.3f}"))
    if many:
        cells.append(_f(r.room_coverage_min, "{:.3f}"))
    cells.append(_latency(r))
    if many:
        cells.append(_f(r.room_p99_max_ms, "{:.1f}"))
    return [*cells, _f(r.server_cpu_percent), _f(r.server_rss_mib), _gen(r)]


def _table(res: CompareResult, many: bool, notes: list[str]) -> list[str]:
    opts = res.options
    head = ["transport", "N"]
    if many:
        head += ["rooms", "per room"]
    head += ["offered moves/s", "expected deliveries/s"]
    columns = ["sent/s", "delivered/s", "HTTP req/s", "coverage"]
    if many:
        columns.append("worst room coverage")
    columns.append("latency ms")
    if many:
        columns.append("worst room p99 ms")
    columns += ["CPU %", "RSS MiB", "gen CPU %"]
    for s in opts.servers:
        head += [f"{s} {c}" for c in columns]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    by_key = {(p.transport, p.clients, p.rooms, p.server): p for p in res.points}
    grid = opts.many_rooms if many else [(n, 1) for n in opts.clients]
    for transport in opts.transports:
        for n, k in grid:
            if not any((transport, n, k, s) in by_key for s in opts.servers):
                continue
            per_room = n / k
            cells = [transport, str(n)]
            if many:
                cells += [str(k), f"{per_room:g}"]
            cells += [_f(n * opts.rate), _f(n * per_room * opts.rate)]
            for s in opts.servers:
                label = f"{s} {transport} N={n}" + (f" rooms={k}" if many else "")
                cells += _cells(by_key.get((transport, n, k, s)), many, notes, label)
            out.append("| " + " | ".join(cells) + " |")
    return out


def _generator_text(res: CompareResult) -> str:
    opts = res.options
    if opts.processes > 1:
        gen = f"{opts.processes} load generator processes on one clock"
    else:
        gen = "one load generator process"
    pins = ",".join(str(c) for c in opts.gen_cpus) if opts.gen_cpus else None
    if opts.server_cpu is not None:
        gen += f" (pinned to CPU {pins})" if pins else " (not pinned)"
        return f"servers pinned to CPU {opts.server_cpu}, {gen}"
    return f"no server pinning, {gen}"


def render_markdown(res: CompareResult) -> str:
    opts = res.options
    servers = opts.servers
    out: list[str] = []
    noisy = sum(
        1
        for p in res.points
        if p.result and any(w.startswith("other processes") for w in p.result.warnings)
    )
    if noisy:
        out.append(
            f"**Caution: during {noisy} of {len(res.points)} points other programs used more "
            f"than {OTHER_CPU_LIMIT:g} % of a core (see the notes). This run is not a clean "
            "measurement: rerun `scripts/bench.sh` on an otherwise idle machine.**"
        )
        out.append("")
    out += [f"Run {res.started}, {res.seconds / 60:.1f} min. Command:", "", "```"]
    out += [res.command or "python -m benchmarks.compare", "```", "", "Machine:", ""]
    out += [f"- {k}: {v}" for k, v in res.machine.items()]
    out.append("")
    observers = (
        "all of them"
        if opts.observers is None
        else f"{opts.observers} of them (all when N <= {opts.observers}; one per room in turn)"
    )
    out.append(
        f"Every client moves at {opts.rate:g} Hz; {opts.warmup:g} s warmup, "
        f"{opts.duration:g} s measured, {opts.drain:g} s drain; {_generator_text(res)}; a "
        f"fresh server for every point. Every client receives everything of its room; "
        f"{observers} parse every message for coverage and latency. Over HTTP a client "
        "sends as sockjs-client does: one send in flight, then a "
        f"{opts.send_wait * 1000:g} ms pause in which its moves wait for the next send. "
        "CPU in % of one core (gen CPU: the busiest generator process), RSS at the end of "
        "the window."
    )
    notes: list[str] = []
    out += ["", "### One room", ""]
    out.append("N clients in one room, every move delivered to every client (sender included).")
    out.append("")
    out += _table(res, False, notes)
    out.append("")
    out.append(
        "offered = N x rate moves/s; expected = every move to every client, N x N x rate. "
        "sent/s and delivered/s are measured; HTTP req/s counts sends, polls and reopened "
        "streams; coverage counts a move the server superseded "
        "by a later move of the same sender as delivered; latency p50 / p95 / p99 of the moves "
        "that arrived. † a load generator process reported itself as a bottleneck at that "
        "point (see the notes)."
    )
    out += ["", f"Saturation N (largest N tried with coverage >= {SATURATION_COVERAGE} and "]
    out[-1] += f"p99 <= {SATURATION_P99_MS:g} ms):"
    out += ["", "| transport | " + " | ".join(servers) + " |"]
    out.append("|---|" + "|".join("---" for _ in servers) + "|")
    for transport in opts.transports:
        sat = " | ".join(saturation(res.points, s, transport) for s in servers)
        out.append(f"| {transport} | {sat} |")
    if any(p.rooms > 1 for p in res.points):
        out += ["", "### Many rooms", ""]
        out.append(
            "N clients in K rooms (client i in room i mod K, named in the session URL's `room` "
            "query), every move delivered to every client of its room; a move from another room "
            "counts as an error. expected = N x (N / K) x rate. Coverage and latency are "
            "computed per room: worst room coverage is the lowest, worst room p99 the highest "
            "over the rooms; every room has at least one observer."
        )
        out.append("")
        out += _table(res, True, notes)
    if res.idle:
        out += [
            "",
            f"Idle sessions: server RSS growth per open idle session ({opts.idle_sessions} "
            "sessions, measured 3 s after the last opened):",
            "",
            "| transport | server | opened | RSS before MiB | RSS after MiB | KiB/session |",
            "|---|---|---|---|---|---|",
        ]
        for ip in res.idle:
            s, ir = ip.server, ip.result
            if ir is None:
                out.append(f"| {ip.transport} | {s} | failed | - | - | - |")
                notes.append(f"{s} idle {ip.transport}: {ip.error[:200]}")
                continue
            out.append(
                f"| {ir.transport} | {s} | {ir.connected}/{ir.sessions} | "
                f"{_f(ir.rss_before_mib, '{:.1f}')} | {_f(ir.rss_after_mib, '{:.1f}')} | "
                f"{_f(ir.per_session_kib, '{:.1f}')} |"
            )
            notes += [f"{s} idle {ir.transport}: {w}" for w in ir.warnings]
    if notes:
        out += ["", "Notes from the run:", ""]
        out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def update_doc(path: Path, markdown: str) -> None:
    """Replace the text between the bench markers of ``path`` with ``markdown``."""
    text = path.read_text(encoding="utf-8")
    begin = text.find(DOC_BEGIN)
    end = text.find(DOC_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{path} has no {DOC_BEGIN} ... {DOC_END} region")
    new = text[: begin + len(DOC_BEGIN)] + "\n" + markdown + text[end:]
    path.write_text(new, encoding="utf-8")


def command_line(argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv if argv is None else argv)
    if args and args[0].endswith(("compare.py", "__main__.py")):
        args = ["python", "-m", "benchmarks.compare", *args[1:]]
    elif args:
        args[0] = os.path.basename(args[0])
    return shlex.join(args)
