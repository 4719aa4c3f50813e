"""What a comparison ran and measured: its options, its points, and the saturation N."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cursorshare.bench import IdleResult, LoadResult
from cursorshare.bench.clients import SOCKJS_CLIENT_SEND_WAIT_MS

from .servers import SERVERS

__all__ = [
    "SATURATION_COVERAGE",
    "SATURATION_P99_MS",
    "CompareOptions",
    "CompareResult",
    "IdlePoint",
    "Point",
    "saturation",
]

SATURATION_COVERAGE = 0.99
SATURATION_P99_MS = 100.0


@dataclass
class CompareOptions:
    transports: list[str]
    clients: list[int]
    rate: float = 30.0
    duration: float = 15.0
    warmup: float = 3.0
    drain: float = 1.0
    send_wait: float = SOCKJS_CLIENT_SEND_WAIT_MS / 1000.0  # s, HTTP transports' send pause
    observers: int | None = None
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    idle_sessions: int = 0
    idle_transports: list[str] = field(default_factory=lambda: ["websocket"])
    many_rooms: list[tuple[int, int]] = field(default_factory=list)  # (N, K) points
    server_cpu: int | None = 0
    gen_cpus: list[int] | None = field(default_factory=lambda: [1])
    processes: int = 1  # load generator processes per point
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
    rooms: int = 1


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
                    "rooms": p.rooms,
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


def saturation(points: Sequence[Point], server: str, transport: str) -> str:
    """Largest N of the one-room points that held coverage >= 0.99 and p99 <= 100 ms, as text.

    ``>= N`` when the largest N tried held; ``< N`` when even the smallest did not; a trailing
    ``†`` when the load generator reported itself as a bottleneck at the deciding point.
    """
    tried = sorted(
        (p for p in points if p.server == server and p.transport == transport and p.rooms == 1),
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
