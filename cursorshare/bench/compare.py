"""Comparison mode: cursorshare against the sockjs-node tutorial server, side by side.

For every (transport, N) point and every server, a fresh server process is started on a free
port of 127.0.0.1, pinned to one CPU with ``taskset``, and one load point is run against it
from this process (pinned to another CPU). Then, optionally, an idle-memory point per server.
The results print as a markdown table, with each server's saturation N: the largest N tried
with coverage >= 0.99 and p99 latency <= 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import filecmp
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .runner import (
    OTHER_CPU_LIMIT,
    IdleConfig,
    IdleResult,
    LoadConfig,
    LoadResult,
    machine_busy_seconds,
    raise_nofile_limit,
    run_idle,
    run_load,
)

__all__ = [
    "SATURATION_COVERAGE",
    "SATURATION_P99_MS",
    "CompareOptions",
    "CompareResult",
    "IdlePoint",
    "Point",
    "ServerSpec",
    "cursorshare_command",
    "free_port",
    "prepare_sockjs_node",
    "render_markdown",
    "run_compare",
    "saturation",
    "update_doc",
]

SATURATION_COVERAGE = 0.99
SATURATION_P99_MS = 100.0
SERVERS = ("cursorshare", "sockjs-node")
DOC_BEGIN = "<!-- bench:begin -->"
DOC_END = "<!-- bench:end -->"
SOCKJS_NODE_FILES = ("package.json", "package-lock.json", "server.js")


def default_sockjs_node_src() -> Path:
    """``bench/sockjs-node`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "bench" / "sockjs-node"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cursorshare_command() -> list[str]:
    """How to start ``cursorshare serve`` with this interpreter; ``{port}`` is filled later."""
    if importlib.util.find_spec("cursorshare.__main__") is not None:
        base = [sys.executable, "-m", "cursorshare"]
    else:
        script = Path(sys.executable).with_name("cursorshare")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "cursorshare.cli"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", "{port}"]


def prepare_sockjs_node(src: Path, work: Path, log: Callable[[str], None] = print) -> Path:
    """Copy the tutorial server to ``work`` and ``npm ci`` it there (once); returns ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    changed = False
    for name in SOCKJS_NODE_FILES:
        s, d = src / name, work / name
        if not s.exists():
            raise FileNotFoundError(f"{s} is missing")
        if not d.exists() or not filecmp.cmp(s, d, shallow=False):
            shutil.copyfile(s, d)
            changed = True
    if changed or not (work / "node_modules" / "sockjs" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: cannot install the sockjs-node server")
        log(f"installing the sockjs-node tutorial server into {work} (npm ci)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            timeout=600,
        )
    return work


# Environment for the cursorshare server under test: lift the per-address session cap (every
# benchmark client comes from 127.0.0.1), for servers that read these knobs.
CURSORSHARE_ENV = {
    "CURSORSHARE_MAX_SESSIONS": "1000000",
    "CURSORSHARE_MAX_SESSIONS_PER_ADDRESS": "1000000",
    "CURSORSHARE_LOG_LEVEL": "warning",
}


@dataclass
class ServerSpec:
    name: str
    argv: list[str]  # may contain "{port}"
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        return [a.replace("{port}", str(port)) for a in self.argv]


class ServerProcess:
    """A server subprocess on 127.0.0.1:port, optionally pinned with ``taskset -c CPU``."""

    def __init__(self, spec: ServerSpec, port: int, cpu: int | None, log_dir: Path) -> None:
        self.spec = spec
        self.port = port
        self.url = f"http://127.0.0.1:{port}/ws"
        argv = spec.command(port)
        taskset = shutil.which("taskset")
        if cpu is not None and taskset is not None:
            argv = [taskset, "-c", str(cpu), *argv]
        self.argv = argv
        self.log_path = log_dir / f"{spec.name}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.spec.name} exited with {self.proc.returncode}: {self.tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    async with http.get(self.url + "/info") as resp:
                        if resp.status == 200:
                            await resp.read()
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.spec.name} did not answer {self.url}/info in {within:.0f} s")

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5.0)
        self._log.close()


@contextlib.contextmanager
def running_server(spec: ServerSpec, cpu: int | None, log_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(spec, free_port(), cpu, log_dir)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class CompareOptions:
    transports: list[str]
    clients: list[int]
    rate: float = 30.0
    duration: float = 15.0
    warmup: float = 3.0
    drain: float = 1.0
    observers: int | None = None
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    idle_sessions: int = 0
    idle_transports: list[str] = field(default_factory=lambda: ["websocket"])
    server_cpu: int | None = 0
    gen_cpu: int | None = 1
    cursorshare_cmd: list[str] | None = None
    sockjs_node_src: Path | None = None
    sockjs_node_dir: Path | None = None
    pause: float = 1.0  # seconds between points, so the previous server's sockets settle
    quiet_wait: float = 60.0  # wait up to this long for other programs to go quiet


@dataclass
class Point:
    server: str
    transport: str
    clients: int
    result: LoadResult | None
    error: str = ""


@dataclass
class IdlePoint:
    server: str
    transport: str
    sessions: int
    result: IdleResult | None
    error: str = ""


@dataclass
class CompareResult:
    options: CompareOptions
    points: list[Point]
    idle: list[IdlePoint]
    machine: dict[str, str]
    command: str
    started: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.options).items()}
        return {
            "command": self.command,
            "options": options,
            "started": self.started,
            "seconds": self.seconds,
            "machine": self.machine,
            "points": [
                {
                    "server": p.server,
                    "transport": p.transport,
                    "clients": p.clients,
                    "error": p.error,
                    **(p.result.to_dict() if p.result else {}),
                }
                for p in self.points
            ],
            "idle": [
                {
                    "server": p.server,
                    "transport": p.transport,
                    "sessions": p.sessions,
                    "error": p.error,
                    **(p.result.to_dict() if p.result else {}),
                }
                for p in self.idle
            ],
            "saturation": {
                server: {t: saturation(self.points, server, t) for t in self.options.transports}
                for server in self.options.servers
            },
        }


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


async def run_compare(
    opts: CompareOptions, log: Callable[[str], None] = print, command: str = ""
) -> CompareResult:
    started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t_start = time.monotonic()
    raise_nofile_limit(max(4 * max(opts.clients, default=0), 3 * opts.idle_sessions) + 1024)
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
        for transport in opts.transports:
            for n in opts.clients:
                for name in opts.servers:
                    await wait_quiet(opts.quiet_wait, log)
                    log(f"[{name}] {transport} N={n} ...")
                    result, error = await _one_point(specs[name], transport, n, opts, log_dir)
                    if result is not None:
                        log("    " + short_line(result))
                    else:
                        log(f"    FAILED: {error}")
                    points.append(Point(name, transport, n, result, error))
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
    spec: ServerSpec, transport: str, n: int, opts: CompareOptions, log_dir: Path
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
                    observers=opts.observers,
                    server_pid=server.pid,
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


def saturation(points: Sequence[Point], server: str, transport: str) -> str:
    """Largest N that held coverage >= 0.99 and p99 <= 100 ms, as text.

    ``>= N`` when the largest N tried held; ``< N`` when even the smallest did not; a trailing
    ``†`` when the load generator reported itself as a bottleneck at the deciding point.
    """
    tried = sorted(
        (p for p in points if p.server == server and p.transport == transport),
        key=lambda p: p.clients,
    )
    if not tried:
        return "n/a"
    best: int | None = None
    decider: LoadResult | None = None
    failed_run = False
    for p in tried:
        r = p.result
        if r is None:
            failed_run = True
            break
        ok = (
            r.coverage is not None
            and r.coverage >= SATURATION_COVERAGE
            and r.latency_p99_ms is not None
            and r.latency_p99_ms <= SATURATION_P99_MS
            and r.connected == r.clients
        )
        if ok:
            best = p.clients
        else:
            decider = r
            break
    mark = " †" if decider is not None and decider.generator_bound else ""
    if failed_run:
        mark = " (a run failed)"
    if best is None:
        return f"< {tried[0].clients}{mark}"
    if decider is None and not failed_run:
        last = tried[-1].result
        mark = " †" if last is not None and last.generator_bound else ""
        return f">= {best}{mark}"
    return f"{best}{mark}"


def _f(v: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def short_line(r: LoadResult) -> str:
    return (
        f"sent {r.sent_per_s:.0f}/s delivered {r.delivered_per_s:.0f}/s "
        f"(expected {r.expected_per_s:.0f}/s) coverage {_f(r.coverage, '{:.3f}')} "
        f"p50/p95/p99 {_f(r.latency_p50_ms, '{:.1f}')}/{_f(r.latency_p95_ms, '{:.1f}')}/"
        f"{_f(r.latency_p99_ms, '{:.1f}')} ms server CPU {_f(r.server_cpu_percent)}% "
        f"RSS {_f(r.server_rss_mib)} MiB gen CPU {r.gen_cpu_percent:.0f}%"
        + ("" if not r.warnings else "  [" + "; ".join(r.warnings) + "]")
    )


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
    out.append(f"Run {res.started}, {res.seconds / 60:.1f} min. Command:")
    out.append("")
    out.append("```")
    out.append(res.command or "cursorshare bench compare")
    out.append("```")
    out.append("")
    out.append("Machine:")
    out.append("")
    for k, v in res.machine.items():
        out.append(f"- {k}: {v}")
    out.append("")
    pin = (
        f"servers pinned to CPU {opts.server_cpu}, load generator to CPU {opts.gen_cpu}"
        if opts.server_cpu is not None
        else "no CPU pinning"
    )
    out.append(
        f"Workload: N clients in one room, each moving at {opts.rate:g} Hz, every move "
        f"delivered to every client (sender included); {opts.warmup:g} s warmup, "
        f"{opts.duration:g} s measured, {opts.drain:g} s drain, {pin}, a fresh server for "
        "every point. Every client receives everything; "
        + (
            "all of them"
            if opts.observers is None
            else f"{opts.observers} of them (all when N <= {opts.observers}), spread over the N,"
        )
        + " parse every message for coverage and latency. CPU in % of one core, RSS at the "
        "end of the window."
    )
    out.append("")
    head = ["transport", "N", "offered moves/s", "expected deliveries/s"]
    for s in servers:
        head += [
            f"{s} sent/s",
            f"{s} delivered/s",
            f"{s} coverage",
            f"{s} latency ms",
            f"{s} CPU %",
            f"{s} RSS MiB",
            f"{s} gen CPU %",
        ]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" for _ in head) + "|")
    by_key = {(p.transport, p.clients, p.server): p for p in res.points}
    notes: list[str] = []
    for transport in opts.transports:
        for n in opts.clients:
            cells: list[str] = [transport, str(n), _f(n * opts.rate), _f(n * n * opts.rate)]
            for s in servers:
                point = by_key.get((transport, n, s))
                r = point.result if point else None
                if point and point.error:
                    notes.append(f"{s} {transport} N={n}: {point.error[:200]}")
                if r is None:
                    cells += ["failed" if point else "-"] + ["-"] * 6
                    continue
                mark = " †" if r.generator_bound else ""
                cells += [
                    _f(r.sent_per_s),
                    _f(r.delivered_per_s),
                    _f(r.coverage, "{:.3f}"),
                    f"{_f(r.latency_p50_ms, '{:.1f}')} / {_f(r.latency_p95_ms, '{:.1f}')} / "
                    f"{_f(r.latency_p99_ms, '{:.1f}')}",
                    _f(r.server_cpu_percent),
                    _f(r.server_rss_mib),
                    _f(r.gen_cpu_percent) + mark,
                ]
                notes += [f"{s} {transport} N={n}: {w}" for w in r.warnings]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "offered = N x rate moves/s; expected = every move to every client, N x N x rate. "
        "sent/s and delivered/s are measured; coverage counts a move the server superseded "
        "by a later move of the same sender as delivered; latency p50 / p95 / p99 of the moves "
        "that arrived; gen CPU is the load generator's. "
        "† the load generator reported itself as a bottleneck at that point (see the notes)."
    )
    out.append("")
    out.append(
        f"Saturation N (largest N tried with coverage >= {SATURATION_COVERAGE} and p99 <= "
        f"{SATURATION_P99_MS:g} ms):"
    )
    out.append("")
    out.append("| transport | " + " | ".join(servers) + " |")
    out.append("|---|" + "|".join("---" for _ in servers) + "|")
    for transport in opts.transports:
        out.append(
            f"| {transport} | "
            + " | ".join(saturation(res.points, s, transport) for s in servers)
            + " |"
        )
    if res.idle:
        out.append("")
        out.append(
            f"Idle sessions: server RSS growth per open idle session ({opts.idle_sessions} "
            "sessions, measured 3 s after the last opened):"
        )
        out.append("")
        out.append("| transport | server | opened | RSS before MiB | RSS after MiB | KiB/session |")
        out.append("|---|---|---|---|---|---|")
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
            for w in ir.warnings:
                notes.append(f"{s} idle {ir.transport}: {w}")
    if notes:
        out.append("")
        out.append("Notes from the run:")
        out.append("")
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
    if args and args[0].endswith("__main__.py"):
        args = ["python", "-m", "cursorshare.bench", *args[1:]]
    elif args:
        args[0] = os.path.basename(args[0])
    return shlex.join(args)
