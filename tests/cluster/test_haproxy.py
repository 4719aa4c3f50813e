"""Three nodes behind HAProxy (deploy/haproxy.cfg), clients of every kind spread over them."""

from __future__ import annotations

import pytest

from tests.cluster.peers import Peer, close_all
from tests.cluster.procs import Cluster, wait_for

pytestmark = pytest.mark.cluster

#: transport -> the node HAProxy must send it to (picked through its server id).
LAYOUT = [
    ("websocket", "n1"),
    ("xhr-streaming", "n2"),
    ("xhr-polling", "n3"),
    ("jsonp-polling", "n1"),
    ("eventsource", "n2"),
]


async def test_clients_on_every_transport_across_three_nodes(cluster: Cluster) -> None:
    nodes = await cluster.start_nodes(3)
    proxy = await cluster.start_haproxy(nodes)
    server_ids = await proxy.server_ids([node for _, node in LAYOUT])

    peers: list[Peer] = []
    try:
        for (transport, _), server_id in zip(LAYOUT, server_ids, strict=True):
            peer = await Peer(transport, server_id=server_id).join(proxy.ws_url, "lobby")
            # Everyone already there, whatever their node, is in the welcome (or joins just
            # after it, when it joined a moment ago on another node).
            await peer.knows(peers)
            peers.append(peer)

        # The sessions landed where the server ids say (each node counts its own).
        expected = {node.node_id: 0 for node in nodes}
        for _, node_id in LAYOUT:
            expected[node_id] += 1
        for node in nodes:
            health = await node.healthz()
            assert health["sessions"] == expected[node.node_id], node.node_id
            assert health["backplane"] == "up"

        # Every move reaches everyone, the sender included.
        for i, mover in enumerate(peers):
            x, y = (i + 1) / 8, 1 - (i + 1) / 8
            await mover.move(x, y)
            for peer in peers:
                await peer.sees_move(mover, x, y)

        # Every leave reaches everyone left.
        while peers:
            leaver = peers.pop(0)
            await leaver.close()
            for peer in peers:
                await peer.sees_leave(leaver.id)

        async def all_gone() -> bool:
            return all([(await node.healthz())["sessions"] == 0 for node in nodes])

        await wait_for(all_gone, 5, "every session removed")
    finally:
        await close_all(peers)
