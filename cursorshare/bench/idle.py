"""One idle-memory point (``run_idle``): the server's RSS growth per open idle session."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from .clients import Tally
from .generator import close_all, connector, http_pool, open_all
from .probes import ServerProbe, raise_nofile_limit
from .transports import client_class

__all__ = ["IdleConfig", "IdleResult", "run_idle"]


@dataclass
class IdleConfig:
    url: str
    transport: str = "websocket"
    sessions: int = 1000
    server_pid: int | None = None
    settle: float = 3.0
    connect_concurrency: int = 200
    connect_timeout: float = 20.0


@dataclass
class IdleResult:
    transport: str
    url: str
    sessions: int
    connected: int
    open_seconds: float
    rss_before_mib: float | None
    rss_after_mib: float | None
    per_session_kib: float | None
    errors: int
    last_error: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_idle(config: IdleConfig) -> IdleResult:
    """Open ``sessions`` idle sessions and report the server's RSS growth per session."""
    cls = client_class(config.transport)
    raise_nofile_limit(3 * config.sessions + 256)
    probe = ServerProbe(config.server_pid) if config.server_pid else None
    tally = Tally()
    deadline = (
        time.perf_counter()
        + config.connect_timeout * (1 + config.sessions / max(1, config.connect_concurrency))
        + config.settle
        + 60.0
    )
    rss_before = rss_after = None
    warnings: list[str] = []
    async with (
        aiohttp.ClientSession(
            connector=connector(), timeout=aiohttp.ClientTimeout(total=30.0)
        ) as http,
        http_pool(config.url) as pool,
    ):
        if probe is not None:
            rss_before = probe.rss_bytes()
        clients = [
            cls(http, pool, config.url, i, tally, n_senders=0, observer=False, deadline=deadline)
            for i in range(config.sessions)
        ]
        t_open = time.perf_counter()
        try:
            connected = await open_all(
                clients, config.connect_concurrency, config.connect_timeout, tally
            )
            open_seconds = time.perf_counter() - t_open
            await asyncio.sleep(config.settle)
            if probe is not None:
                rss_after = probe.rss_bytes()
        finally:
            await close_all(clients)
    per = None
    if rss_before is not None and rss_after is not None and connected:
        per = (rss_after - rss_before) / len(connected) / 1024.0
    if len(connected) < config.sessions:
        warnings.append(f"only {len(connected)} of {config.sessions} sessions opened")
    if tally.errors:
        warnings.append(f"{tally.errors} errors, last: {tally.last_error}")
    return IdleResult(
        transport=config.transport,
        url=config.url,
        sessions=config.sessions,
        connected=len(connected),
        open_seconds=open_seconds,
        rss_before_mib=None if rss_before is None else rss_before / 2**20,
        rss_after_mib=None if rss_after is None else rss_after / 2**20,
        per_session_kib=per,
        errors=tally.errors,
        last_error=tally.last_error,
        warnings=warnings,
    )
