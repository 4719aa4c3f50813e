"""Faults: a node killed with SIGKILL, Redis stopped and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.peers import Peer, close_all
from tests.cluster.procs import Cluster, Node, wait_for

pytestmark = pytest.mark.cluster

#: What the brief promises: a dead node's users are reported (reconnecting) within this.
DEAD_NODE_DETECTION = 10.0
#: ... and cross-node delivery is back within this after Redis returns.
REDIS_RECOVERY = 5.0


async def backplane_is(node: Node, state: str) -> bool:
    return bool((await node.healthz())["backplane"] == state)


def sees_reconnecting(member: str) -> Callable[[Any], bool]:
    return lambda m: (
        m.get("type") == "presence" and m.get("id") == member and m.get("status") == "reconnecting"
    )


async def test_killed_node_users_show_reconnecting_and_the_others_keep_working(
    cluster: Cluster,
) -> None:
    """Its users may resume on another node within the grace (tests/cluster/
    test_identity_survives.py): meanwhile the others see them reconnecting, not leaving."""
    nodes = await cluster.start_nodes(3)
    proxy = await cluster.start_haproxy(nodes)
    sid1, sid2, sid3a, sid3b = await proxy.server_ids(["n1", "n2", "n3", "n3"])
    peers: list[Peer] = []
    try:
        ada = await Peer("websocket", server_id=sid1).join(proxy.ws_url, "r")
        bob = await Peer("xhr-streaming", server_id=sid2).join(proxy.ws_url, "r")
        cid = await Peer("websocket", server_id=sid3a).join(proxy.ws_url, "r")
        dan = await Peer("xhr-polling", server_id=sid3b).join(proxy.ws_url, "r")
        peers += [ada, bob, cid, dan]
        await dan.knows([ada, bob, cid])
        await cid.move(0.5, 0.5)
        await ada.sees_move(cid, 0.5, 0.5)
        await bob.sees_move(cid, 0.5, 0.5)

        nodes[2].kill()
        start = time.monotonic()
        for peer in (ada, bob):
            for dead in (cid, dan):
                await peer.until(sees_reconnecting(dead.id), within=DEAD_NODE_DETECTION)
        detected = time.monotonic() - start
        print(f"dead node's users reported as reconnecting after {detected:.2f}s")
        assert detected < DEAD_NODE_DETECTION

        # The survivors still talk to each other.
        await ada.move(0.25, 0.5)
        await bob.sees_move(ada, 0.25, 0.5)
        await bob.move(0.75, 0.5)
        await ada.sees_move(bob, 0.75, 0.5)

        # A newcomer, even with a server id of the dead node, lands on a live one (once
        # HAProxy's check took n3 out) and is told of the dead node's users as reconnecting.
        async def n3_out() -> bool:
            return await proxy.node_of(sid3a) != "n3"

        await wait_for(n3_out, 10, "HAProxy taking n3 out")
        eve = await Peer("xhr-streaming", server_id=sid3a).join(proxy.ws_url, "r")
        peers.append(eve)
        statuses = {member: user["status"] for member, user in eve.users().items()}
        assert statuses == {
            ada.id: "active",
            bob.id: "active",
            cid.id: "reconnecting",
            dan.id: "reconnecting",
        }
    finally:
        await close_all(peers)


async def test_cleanly_stopped_node_users_show_reconnecting_at_once(cluster: Cluster) -> None:
    """Their sessions end without a bye: they may come back (to a restarted node, or another
    one) within the grace, so their entries stay, stamped to leave when it ends."""
    a, b = await cluster.start_nodes(2)
    peers: list[Peer] = []
    try:
        ada = await Peer("websocket").join(a.ws_url, "r")
        bob = await Peer("xhr-polling").join(b.ws_url, "r")
        peers += [ada, bob]
        await ada.knows([bob])
        assert b.proc is not None
        b.proc.send_signal(signal.SIGTERM)  # the node closes its sessions, stamps its orphans
        await ada.until(sees_reconnecting(bob.id), within=10)  # (a bound on the event)
        await wait_for(b.exited, 10, "node b exiting")
        redis = cluster.redis.client()
        try:
            assert await redis.exists("cursorshare:node:n2") == 0
            members = {ada.id.encode(), bob.id.encode()}
            assert set(await redis.hkeys("cursorshare:presence:r")) == members
            assert set(await redis.hkeys("cursorshare:orphans:r")) == {bob.id.encode()}
        finally:
            await redis.aclose()
        assert not [m for m in ada.history if m.get("type") == "leave"]
    finally:
        await close_all(peers)


async def test_redis_outage_and_recovery(cluster: Cluster) -> None:
    a, b = await cluster.start_nodes(2)
    peers: list[Peer] = []
    mover: asyncio.Task[None] | None = None
    try:
        a1 = await Peer("websocket").join(a.ws_url, "r")
        a2 = await Peer("xhr-streaming").join(a.ws_url, "r")
        b1 = await Peer("websocket").join(b.ws_url, "r")
        peers += [a1, a2, b1]
        await b1.knows([a1, a2])
        await a1.move(0.1, 0.1)
        await b1.sees_move(a1, 0.1, 0.1)

        # Redis goes away: both nodes notice, and say so on /healthz.
        cluster.redis.stop()
        await wait_for(lambda: backplane_is(a, "down"), 5, "node a: backplane down")
        await wait_for(lambda: backplane_is(b, "down"), 5, "node b: backplane down")
        health = await a.healthz()
        assert health["status"] == "degraded"

        # Each node keeps serving its own users, promptly, for as long as the outage lasts
        # (here long enough for every node key to expire and the reconnect backoff to cap).
        outage = time.monotonic()
        for i in range(100):  # (a move waiting for Redis would never arrive: it is down)
            await a1.move(0.2 + i / 1000, 0.2)
            await a2.sees_move(a1, 0.2 + i / 1000, 0.2, within=5.0)
            if time.monotonic() - outage > 4:
                break
            await asyncio.sleep(0.1)
        a3 = await Peer("xhr-polling").join(a.ws_url, "r")  # joining works too
        peers.append(a3)
        assert set(a3.users()) == {a1.id, a2.id, b1.id}  # (b1 as last known)
        await a2.close()
        await a1.sees_leave(a2.id)

        # Redis comes back on the same port: cross-node delivery resumes within seconds.
        await cluster.redis.start()
        restarted = time.monotonic()

        async def keep_moving() -> None:
            for i in range(200):
                await a1.move(0.5, i / 200)
                await asyncio.sleep(0.05)

        mover = asyncio.get_running_loop().create_task(keep_moving())
        await b1.until(
            lambda m: m.get("type") == "move" and m.get("sender") == a1.id and m["x"] == 0.5,
            REDIS_RECOVERY,
        )
        recovered = time.monotonic() - restarted
        print(f"cross-node delivery back {recovered:.2f}s after Redis restarted")
        assert recovered < REDIS_RECOVERY
        mover.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mover
        await b1.move(0.9, 0.9)
        await a1.sees_move(b1, 0.9, 0.9)
        await a3.sees_move(b1, 0.9, 0.9)
        assert await backplane_is(a, "up") and await backplane_is(b, "up")

        # What b missed during the outage is reported: a2 left, a3 joined.
        await b1.sees_leave(a2.id, within=10)
        await b1.sees_join(a3, within=10)
        # And a newcomer on b is told of everyone on a (presence was re-written).
        b2 = await Peer("websocket").join(b.ws_url, "r")
        peers.append(b2)
        await b2.knows([a1, a3, b1])
        assert a2.id not in b2.users()
    finally:
        if mover is not None:
            mover.cancel()
        await close_all(peers)
