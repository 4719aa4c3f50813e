"""The two deployments without sticky routing that tests/browser/test_no_sticky.py drives:
three `cursorshare serve` nodes behind HAProxy (`deploy/haproxy-roundrobin.cfg`, `balance
roundrobin`), and `cursorshare serve --workers 3`; both on one real redis-server, with the
browser suite's delays. Each is an async context giving a `Deployment`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.procs import REPO, STARTUP, HAProxy, Node, RedisServer, wait_for
from tests.support.server import ServerProcess
from tests.support.webapp import DISCONNECT_DELAY, HEARTBEAT_DELAY

ROUNDROBIN = REPO / "deploy" / "haproxy-roundrobin.cfg"
NODES = 3
#: The node flags of the browser suite: a short disconnect delay, a heartbeat inside the
#: waits; the default resume grace (120 s): a closed page leaves by its bye, not its grace.
DELAYS = (
    "--disconnect-delay", str(DISCONNECT_DELAY),
    "--heartbeat-delay", str(HEARTBEAT_DELAY), "--log-level", "debug", "--access-log",
)  # fmt: skip


async def healthz(url: str) -> dict[str, Any]:
    """`/healthz` over a fresh connection (with SO_REUSEPORT each may reach another worker)."""
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=2)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(f"{url}/healthz") as response,
    ):
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


@dataclass
class Deployment:
    """Where the pages go (`front`: its URL; a described, not started, process for HAProxy)
    and how to see and kill its nodes."""

    name: str
    front: ServerProcess
    #: Every live node's /healthz, by node id.
    health: Callable[[], Awaitable[dict[str, dict[str, Any]]]]
    #: SIGKILL to that node.
    kill: Callable[[str], None]
    logs: Callable[[], str]

    @property
    def url(self) -> str:
        return self.front.url


class BrowserNode(Node):
    """A cluster node with the browser suite's delays (tests.cluster's nodes use 1 s)."""

    def __init__(self, node_id: str, redis_url: str, tmp: Path) -> None:
        super().__init__(node_id, redis_url, tmp)
        self.server = ServerProcess.cursorshare(
            "--redis-url", redis_url, "--node-id", node_id, *DELAYS, log=self.log
        )
        self.port = self.server.port


@contextlib.asynccontextmanager
async def behind_haproxy(redis: RedisServer, tmp: Path) -> AsyncIterator[Deployment]:
    nodes = [BrowserNode(f"n{i}", redis.url, tmp) for i in range(1, NODES + 1)]
    proxy = HAProxy(list(nodes), tmp, ROUNDROBIN)
    try:
        for node in nodes:
            node.spawn()
        await asyncio.gather(*(node.wait_ready() for node in nodes))
        await proxy.start()
        assert set(await proxy.nodes_seen(2 * NODES)) == {n.node_id for n in nodes}

        async def health() -> dict[str, dict[str, Any]]:
            live = [n for n in nodes if n.server.running]
            return {n.node_id: await n.healthz() for n in live}

        def kill(node_id: str) -> None:
            next(n for n in nodes if n.node_id == node_id).kill()

        yield Deployment(
            "haproxy",
            ServerProcess([str(proxy.config)], port=proxy.port),
            health,
            kill,
            lambda: logs(tmp),
        )
    finally:
        proxy.stop()
        for node in nodes:
            node.server.send_signal(signal.SIGTERM)
        for node in nodes:
            node.stop()


@contextlib.asynccontextmanager
async def with_workers(redis: RedisServer, tmp: Path) -> AsyncIterator[Deployment]:
    server = ServerProcess.cursorshare(
        "--workers", str(NODES), "--redis-url", redis.url, "--node-id", "w", *DELAYS,
        log=tmp / "workers.log",
    )  # fmt: skip
    killed: set[str] = set()

    def pids() -> dict[str, int]:
        """Worker node id -> pid, from the parent's start line (workers w1, w2, ... in order)."""
        line = next(x for x in server.output().splitlines() if "workers on port" in x)
        listed = line.split("(pids ")[1].rstrip(")").split(", ")
        return {f"w-w{i}": int(pid) for i, pid in enumerate(listed, 1)}

    async def health() -> dict[str, dict[str, Any]]:
        """Each live worker's answer, asked over fresh connections until all have answered."""
        seen: dict[str, dict[str, Any]] = {}
        expected = NODES - len(killed)

        async def all_seen() -> bool:
            answer = await healthz(server.url)
            if answer["backplane"] == "up":
                seen[answer["node"]] = answer
            return len(seen) == expected

        await wait_for(all_seen, STARTUP, f"{expected} workers")
        return seen

    def kill(node_id: str) -> None:
        killed.add(node_id)
        os.kill(pids()[node_id], signal.SIGKILL)

    try:
        await server.astart()
        assert set(await health()) == set(pids())
        yield Deployment("workers", server, health, kill, lambda: logs(tmp))
    finally:
        await server.astop()
        if server.output():
            for pid in pids().values():  # only if a worker outlived the parent
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def logs(tmp: Path) -> str:
    return "\n".join(f"----- {p.name}\n{p.read_text(errors='replace')}" for p in tmp.glob("*.log"))
