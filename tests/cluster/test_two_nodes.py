"""Two nodes sharing a Redis, clients connected to each node directly."""

from __future__ import annotations

import asyncio

import pytest

from cursorshare.backplanes.redis.keys import Entry, KeyLayout
from tests.cluster.peers import Peer, close_all
from tests.cluster.procs import Cluster, wait_for

pytestmark = pytest.mark.cluster


async def test_newcomer_sees_users_of_the_other_node_and_moves_cross(cluster: Cluster) -> None:
    a, b = await cluster.start_nodes(2)
    peers: list[Peer] = []
    try:
        ada = await Peer("websocket").join(a.ws_url, "r")
        peers.append(ada)
        bob = await Peer("websocket").join(a.ws_url, "r")
        peers.append(bob)
        await ada.move(0.25, 0.75)
        await bob.sees_move(ada, 0.25, 0.75)  # the move went through node a's hub
        redis = cluster.redis.client()
        key = KeyLayout().presence("r")

        async def position_written() -> bool:
            raw = await redis.hget(key, ada.id)
            entry = None if raw is None else Entry.decode(raw)
            return entry is not None and entry.state["x"] == 0.25

        try:
            await wait_for(position_written, 2, "ada's position in Redis")
        finally:
            await redis.aclose()

        # A newcomer on node b: its welcome lists a's users with their last positions.
        cid = await Peer("xhr-streaming").join(b.ws_url, "r")
        peers.append(cid)
        users = cid.users()
        assert set(users) == {ada.id, bob.id}
        assert (users[ada.id]["x"], users[ada.id]["y"]) == (0.25, 0.75)
        assert (users[bob.id]["x"], users[bob.id]["y"]) == (None, None)
        assert users[ada.id]["color"] == ada.welcome["color"]
        assert "node" not in users[ada.id] and "inst" not in users[ada.id]
        await ada.sees_join(cid)
        await bob.sees_join(cid)

        # Moves cross nodes both ways.
        await cid.move(0.5, 0.125)
        await ada.sees_move(cid, 0.5, 0.125)
        await bob.sees_move(cid, 0.5, 0.125)
        await bob.move(0.875, 0.5)
        await cid.sees_move(bob, 0.875, 0.5)

        # Rooms stay apart: a client of another room on node b sees none of room r.
        other = await Peer("websocket").join(b.ws_url, "other")
        peers.append(other)
        assert other.users() == {}
        await ada.move(0.1, 0.1)
        await cid.sees_move(ada, 0.1, 0.1)
        await asyncio.sleep(0.2)
        assert not [m for m in other.client.pending() if '"sender"' in m]

        # Leaves cross too.
        await bob.close()
        assert await cid.sees_leave(bob.id) < 5
        await cid.close()
        assert await ada.sees_leave(cid.id) < 5

        # Each node reports its own sessions, and a backplane that is up.
        assert (await a.healthz())["backplane"] == (await b.healthz())["backplane"] == "up"

        async def sessions_of_a() -> bool:
            return bool((await a.healthz())["sessions"] == 1)  # ada (bob closed)

        await wait_for(sessions_of_a, 5, "bob's session removed")
    finally:
        await close_all(peers)
