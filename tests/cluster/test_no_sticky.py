"""No sticky routing: HAProxy `balance roundrobin` over three nodes, and `serve --workers 3`.

Every request of a session may land on any node (a round-robin balancer sends each request
to the next node; with SO_REUSEPORT the kernel spreads connections over the workers). Every
transport must work as with sticky routing: everyone sees everyone's moves and leaves, and no
one is reported as leaving (or joining twice) because its requests hopped between nodes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest

from tests.cluster.peers import Peer, close_all
from tests.cluster.procs import REPO, STARTUP, Cluster, RedisServer, free_port, wait_for
from tests.support.clients import TRANSPORTS

ROUNDROBIN = REPO / "deploy" / "haproxy-roundrobin.cfg"


async def _healthz(url: str) -> dict[str, Any]:
    """One fresh connection's answer (with SO_REUSEPORT each may reach another worker)."""
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=2)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(f"{url}/healthz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


def assert_no_flicker(peers: list[Peer], gone: set[str]) -> None:
    """Nobody was told a present user left, nor joined twice."""
    for peer in peers:
        leaves = {m["id"] for m in peer.history if m.get("type") == "leave"}
        assert leaves <= gone, (peer, leaves - gone)
        joins = collections.Counter(m["id"] for m in peer.history if m.get("type") == "join")
        assert all(count == 1 for count in joins.values()), (peer, joins)


async def room_works(base_url: str, room: str) -> list[Peer]:
    """A client of every transport joins ``room``; every move reaches everyone."""
    peers: list[Peer] = []
    for transport in TRANSPORTS:
        peer = await Peer(transport).join(base_url, room)
        await peer.knows(peers)
        peers.append(peer)
    for peer in peers:
        await peer.knows([p for p in peers if p is not peer])
    for round_ in range(3):  # several rounds: the polling ones hop nodes many times
        for i, mover in enumerate(peers):
            x, y = (i + 1) / 10, round_ / 10
            await mover.move(x, y)
            for peer in peers:
                await peer.sees_move(mover, x, y)
    assert_no_flicker(peers, gone=set())
    return peers


async def leaves_reach_everyone(peers: list[Peer]) -> None:
    gone: set[str] = set()
    everyone = list(peers)
    while peers:
        leaver = peers.pop(0)
        await leaver.close()
        gone.add(leaver.id)
        for peer in peers:
            await peer.sees_leave(leaver.id)
    assert_no_flicker(everyone, gone)


@pytest.mark.cluster
async def test_every_transport_behind_a_round_robin_haproxy(cluster: Cluster) -> None:
    nodes = await cluster.start_nodes(3)
    proxy = await cluster.start_haproxy(nodes, ROUNDROBIN)
    # Round robin indeed: consecutive requests go to every node.
    assert set(await proxy.nodes_seen(6)) == {n.node_id for n in nodes}
    peers: list[Peer] = []
    try:
        peers = await room_works(proxy.ws_url, "lobby")
        # Requests of sessions held elsewhere were served by relaying, on several nodes.
        healths = [await node.healthz() for node in nodes]
        relaying = [h["node"] for h in healths if h["forwarded"]["out"] > 0]
        assert len(relaying) >= 2, healths
        assert sum(h["sessions"] for h in healths) == len(TRANSPORTS)
        await leaves_reach_everyone(peers)

        async def all_gone() -> bool:
            return all([(await node.healthz())["sessions"] == 0 for node in nodes])

        await wait_for(all_gone, 5, "every session removed")
    finally:
        await close_all(peers)


@pytest.mark.cluster
async def test_requests_for_a_killed_node_are_retried_on_the_others(cluster: Cluster) -> None:
    """Until HAProxy's check takes a killed node out (2 s), round robin still gives it its
    turn: deploy/haproxy-roundrobin.cfg retries a refused connection on another node, so a
    session a live node holds goes on untouched (before, those requests got HAProxy's 503 and
    sockjs-client closed the session)."""
    nodes = await cluster.start_nodes(3)
    proxy = await cluster.start_haproxy(nodes, ROUNDROBIN)
    session_url = f"{proxy.ws_url}/000/{secrets.token_hex(8)}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(f"{session_url}/xhr?v=2&room=retried") as response:
            assert await response.text() == "o\n"
            owner = response.headers["X-Cursorshare-Node"]

        async def keep_polling() -> None:  # the session stays attached while the sends go
            while True:
                async with http.post(f"{session_url}/xhr") as poll:
                    await poll.read()

        polling = asyncio.create_task(keep_polling())
        next(node for node in nodes if node.node_id != owner).kill()
        # A message that has no answer: the client says it is active, which it is already.
        active = orjson.dumps({"type": "presence", "status": "active"}).decode()
        statuses = []
        for _ in range(2 * len(nodes)):  # the killed node's turn comes twice
            async with http.post(f"{session_url}/xhr_send", json=[active]) as response:
                statuses.append(response.status)
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    assert statuses == [204] * len(statuses)


class Workers:
    """`cursorshare serve --workers 3` as a subprocess."""

    def __init__(self, redis_url: str, tmp: Path, count: int = 3) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.count = count
        self.log = tmp / "workers.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CURSORSHARE_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "cursorshare", "serve",
                    "--workers", str(count),
                    "--host", "127.0.0.1",
                    "--port", str(self.port),
                    "--redis-url", redis_url,
                    "--node-id", "w",
                    "--disconnect-delay", "1",
                ],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
            )  # fmt: skip

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """Each worker's /healthz, asked over fresh connections until all have answered."""
        seen: dict[str, dict[str, Any]] = {}

        async def all_seen() -> bool:
            health = await _healthz(self.url)
            if health["backplane"] == "up":
                seen[health["node"]] = health
            return len(seen) == self.count

        await wait_for(all_seen, STARTUP, f"{self.count} workers:\n{self.log.read_text()}")
        return seen

    def pids(self) -> list[int]:
        """The workers' pids: the first ones, then those started again, in order."""
        lines = self.log.read_text().splitlines()
        line = next(x for x in lines if "workers on port" in x)
        first = [int(pid) for pid in line.split("(pids ")[1].rstrip(")").split(", ")]
        again = [int(m) for m in re.findall(r"started again \(pid (\d+)\)", "\n".join(lines))]
        return first + again

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.pids() if self.log.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # only if a worker outlived the parent


@pytest.mark.cluster
async def test_workers_share_one_port_and_every_transport(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    workers = Workers(redis_server.url, tmp_path)
    peers: list[Peer] = []
    try:
        assert set(await workers.nodes()) == {"w-w1", "w-w2", "w-w3"}
        peers = await room_works(f"{workers.url}/ws", "lobby")
        await leaves_reach_everyone(peers)

        # A worker killed: the others go on serving; newcomers join and see each other. The
        # parent starts it again (same node id, a new process), and it serves too.
        victim = workers.pids()[0]
        os.kill(victim, signal.SIGKILL)

        async def dead() -> bool:
            # Until the process is gone its listening socket takes its share of new
            # connections (SO_REUSEPORT), and the kernel resets them when it closes.
            try:
                return bool(psutil.Process(victim).status() == psutil.STATUS_ZOMBIE)
            except psutil.NoSuchProcess:
                return True

        await wait_for(dead, STARTUP, "worker-1 gone")
        survivors = await room_works(f"{workers.url}/ws", "after")
        await leaves_reach_everyone(survivors)

        async def restarted() -> bool:
            return len(workers.pids()) == 4

        await wait_for(restarted, STARTUP, "worker-1 started again")
        assert set(await workers.nodes()) == {"w-w1", "w-w2", "w-w3"}
        again = await room_works(f"{workers.url}/ws", "again")
        await leaves_reach_everyone(again)

        # SIGTERM to the parent stops every worker cleanly; its status tells of the dead one.
        workers.proc.send_signal(signal.SIGTERM)
        assert workers.proc.wait(20) == 1
        assert f"(pid {victim}) exited with status -9; 2 workers still serve; restarting" in (
            workers.log.read_text()
        )
        for pid in workers.pids():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        await close_all(peers)
        workers.stop()
        print(workers.log.read_text())


def test_more_than_one_worker_without_redis_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURSORSHARE_")}
    done = subprocess.run(
        [sys.executable, "-m", "cursorshare", "serve", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert done.returncode != 0
    assert "--workers 2 needs --redis-url" in done.stderr


@pytest.mark.cluster
def test_sigterm_stops_every_worker_with_status_0(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    workers = Workers(redis_server.url, tmp_path, count=2)
    try:
        asyncio.run(workers.nodes())
        workers.proc.send_signal(signal.SIGTERM)
        assert workers.proc.wait(20) == 0
        for pid in workers.pids():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        workers.stop()


@pytest.mark.cluster
async def test_sigterm_to_all_workers_gives_every_stream_its_close_frame(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The whole machine stops: every open stream, relayed by another worker or not, ends with
    `c[1001,"Server shutting down"]`, as on one process (measured before the fix: 1 of 6)."""
    workers = Workers(redis_server.url, tmp_path)
    # A fresh connection per request, so the kernel spreads them over the workers.
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        await workers.nodes()
        async with aiohttp.ClientSession(connector=connector) as http:
            streams = []
            for i in range(6):
                base = f"{workers.url}/ws/000/closing{i}{os.getpid()}"
                async with http.post(f"{base}/xhr") as opened:
                    assert await opened.text() == "o\n"
                stream = await http.post(f"{base}/xhr_streaming")
                assert stream.status == 200
                await stream.content.readexactly(2049)  # the prelude: the stream is attached
                streams.append(stream)
            workers.proc.send_signal(signal.SIGTERM)
            bodies = await asyncio.gather(
                *(asyncio.wait_for(s.content.read(), 20) for s in streams)
            )
        ends = [body.rsplit(b"\n", 2)[-2] for body in bodies]
        assert ends == [b'c[1001,"Server shutting down"]'] * 6, ends
        assert workers.proc.wait(20) == 0
    finally:
        workers.stop()
