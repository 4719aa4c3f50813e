"""The processes of the multi-node tests: redis-server, cursorshare nodes, HAProxy."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.support.server import READY_WITHIN, ServerProcess, clean_environment, free_port

REPO = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = REPO / "deploy" / "haproxy.cfg"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

#: Seconds to wait for a process to come up (or go away): an upper bound on an event, as
#: the servers' own `READY_WITHIN` (a loaded CI machine imports slowly).
STARTUP = READY_WITHIN


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.05
) -> float:
    """Poll ``check`` until it is true; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + within
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return time.monotonic() - start
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within}s")
        await asyncio.sleep(interval)


class RedisServer:
    """A throwaway redis-server: no persistence, its own port; can be stopped and restarted."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.spawn()
        await wait_for(self.ping, STARTUP, "redis-server")

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ping(self) -> bool:
        client = Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def client(self) -> Redis:
        return Redis.from_url(self.url)


class Node:
    """One cursorshare server process (`tests.support.server.ServerProcess`)."""

    def __init__(self, node_id: str, redis_url: str, tmp: Path, *flags: str) -> None:
        self.node_id = node_id
        self.redis_url = redis_url
        self.log = tmp / f"{node_id}.log"
        self.flags = ("--redis-url", redis_url, "--node-id", node_id, "--disconnect-delay", "1",
                      *flags)  # fmt: skip
        self.server = ServerProcess.cursorshare(*self.flags, log=self.log)
        self.port = self.server.port

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.process

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return f"{self.url}/ws"

    def spawn(self) -> None:
        """Start the node; again after it stopped: a new process, same id, port and flags."""
        if self.server.process is not None:
            self.server = ServerProcess.cursorshare(*self.flags, log=self.log, port=self.port)
        self.server.spawn()

    async def healthz(self) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{self.url}/healthz") as response,
        ):
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def wait_ready(self) -> None:
        """Until the node answers and its backplane is up."""
        await self.server.await_ready(STARTUP)

        async def backplane_up() -> bool:
            if not self.server.running:
                raise RuntimeError(f"{self.node_id} exited:\n{self.server.output()}")
            return bool((await self.healthz())["backplane"] == "up")

        try:
            await wait_for(backplane_up, STARTUP, f"node {self.node_id}", interval=0.1)
        except TimeoutError:
            raise TimeoutError(f"{self.node_id} not ready:\n{self.server.output()}") from None

    async def exited(self) -> bool:
        return not self.server.running

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crashed machine."""
        self.server.kill()

    def stop(self) -> None:
        self.server.stop()


class HAProxy:
    """haproxy running deploy/haproxy.cfg, its addresses given through the environment."""

    def __init__(self, nodes: list[Node], tmp: Path, template: Path = HAPROXY_TEMPLATE) -> None:
        assert len(nodes) == 3, "the shipped template has three servers"
        self.template = template
        self.port = free_port()
        self.nodes = nodes
        self.config = tmp / "haproxy.cfg"
        self.log = tmp / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        addresses = {
            f"CURSORSHARE_LB_NODE{i}": f"127.0.0.1:{n.port}" for i, n in enumerate(nodes, 1)
        }
        self.env = clean_environment({"CURSORSHARE_LB_BIND": f"127.0.0.1:{self.port}", **addresses})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{self.url}/ws"

    async def start(self) -> None:
        self.spawn()
        await wait_for(self._all_up, STARTUP, "haproxy with every node up", interval=0.1)

    def spawn(self) -> None:
        # The shipped template as is: the addresses come from the environment (self.env).
        shutil.copyfile(self.template, self.config)
        check = subprocess.run(
            [HAPROXY, "-c", "-f", str(self.config)], env=self.env, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    async def _all_up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited:\n{self.log.read_text()}")
        if self.template != HAPROXY_TEMPLATE:
            return len(set(await self.nodes_seen(30)) - {""}) == len(self.nodes)
        served = {await self.node_of(f"{i:03d}") for i in range(30)}
        return served == {n.node_id for n in self.nodes}

    async def node_of(self, server_id: str) -> str:
        """The node HAProxy sends the sessions of ``server_id`` to (from its response header).

        Each probe uses two different session ids and two transports' paths, to check that
        only the server id matters.
        """
        timeout = aiohttp.ClientTimeout(total=2)
        seen = set()
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for path in ("probe-a/xhr_send", "probe-b/websocket-x"):
                async with http.get(f"{self.ws_url}/{server_id}/{path}") as response:
                    seen.add(response.headers.get("X-Cursorshare-Node", ""))
        assert len(seen) == 1, f"server id {server_id} not sticky: {seen}"
        return seen.pop()

    async def nodes_seen(self, requests: int) -> list[str]:
        """The node of each of ``requests`` requests (from the response header)."""
        timeout = aiohttp.ClientTimeout(total=2)
        seen = []
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(requests):
                async with http.get(f"{self.url}/healthz") as response:
                    seen.append(response.headers.get("X-Cursorshare-Node", ""))
        return seen

    async def server_ids(self, nodes: list[str]) -> list[str]:
        """One server id per entry of ``nodes`` that HAProxy routes to that node."""
        by_node: dict[str, list[str]] = {}
        for i in range(1000):
            sid = f"{i:03d}"
            by_node.setdefault(await self.node_of(sid), []).append(sid)
            if all(nodes.count(n) <= len(by_node.get(n, [])) for n in nodes):
                break
        taken: dict[str, int] = {}
        out = []
        for node in nodes:
            out.append(by_node[node][taken.get(node, 0)])
            taken[node] = taken.get(node, 0) + 1
        return out

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


class Cluster:
    """The nodes of one test, sharing one Redis."""

    def __init__(self, redis: RedisServer, tmp: Path) -> None:
        self.redis = redis
        self.tmp = tmp
        self.nodes: list[Node] = []
        self.proxies: list[HAProxy] = []

    async def start_nodes(self, count: int, *flags: str) -> list[Node]:
        """``count`` more nodes, each run with the serve ``flags`` (`--resume-grace 2`...)."""
        new = [
            Node(f"n{len(self.nodes) + i + 1}", self.redis.url, self.tmp, *flags)
            for i in range(count)
        ]
        self.nodes += new
        for node in new:
            node.spawn()
        await asyncio.gather(*(node.wait_ready() for node in new))
        return new

    async def start_haproxy(self, nodes: list[Node], template: Path = HAPROXY_TEMPLATE) -> HAProxy:
        proxy = HAProxy(nodes, self.tmp, template)
        self.proxies.append(proxy)
        await proxy.start()
        return proxy

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        for node in self.nodes:  # all at once: each takes a moment to close its sessions
            node.server.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.tmp.glob("*.log")):
            parts.append(f"----- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)
