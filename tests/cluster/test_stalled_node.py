"""A node that stalls past its liveness TTL, then carries on (issue #15 under load): a loaded
machine can hold a process off its CPU for seconds (CI shares 2 cores with Chromium), and the
other nodes then take it for dead. When it runs again its members are live again for
everyone, and a bye for one of them, over its session or `POST /presence/bye` on another
node, still ends it at once. SIGSTOP and SIGCONT stand for the stall: nothing is closed."""

from __future__ import annotations

import os
import signal

from tests.cluster.procs import Cluster, Node, wait_for
from tests.cluster.test_http_bye import post_bye
from tests.cluster.test_presence import Tab, close_all


async def test_a_stalled_node_s_members_come_back_and_can_still_say_bye(cluster: Cluster) -> None:
    a, b = await cluster.start_nodes(2)
    tabs: list[Tab] = []
    try:
        watcher = await Tab().open(b.ws_url, "stall")
        ada = await Tab().open(a.ws_url, "stall")
        bob = await Tab("xhr-streaming").open(a.ws_url, "stall")
        tabs += [watcher, ada, bob]
        for member in (ada, bob):
            await watcher.knows(member.id)

        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:  # b finds a dead once a's liveness key expired (3 s)
            await watcher.told(type="presence", id=ada.id, status="reconnecting")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        for member in (ada, bob):  # a runs again: its members are live for everyone
            await watcher.told(type="presence", id=member.id, status="active")

        await ada.client.send({"type": "bye"})
        await watcher.told(type="leave", id=ada.id)
        assert await post_bye(b, bob.welcome["resume"]) == 204
        await watcher.told(type="leave", id=bob.id)
        told = [(m.get("type"), m.get("id")) for m in watcher.history]
        assert told.count(("leave", ada.id)) == 1 and told.count(("leave", bob.id)) == 1, told
    finally:
        await close_all(tabs)


async def test_a_member_resumed_elsewhere_while_its_node_stalled_stays_live_there(
    cluster: Cluster,
) -> None:
    """Red team, issue #15: a node stalls (SIGSTOP), its user's page resumes through another
    node, then the stalled node wakes up and reports its stale view of that user (a drop,
    its presence re-written). The resumed session must stay live: told the room's news, and
    its moves seen by everyone, not left connected but cut off."""
    a, b, c = await cluster.start_nodes(3)
    tabs: list[Tab] = []
    try:
        watcher = await Tab().open(c.ws_url, "resumed")
        ada = await Tab("xhr-streaming").open(a.ws_url, "resumed")
        tabs += [watcher, ada]
        await watcher.knows(ada.id)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await watcher.told(type="presence", id=ada.id, status="reconnecting")
            watcher.history.clear()  # from here on: what follows the stall
            again = await Tab().open(b.ws_url, "resumed", ada.welcome["resume"])
            tabs.append(again)
            assert again.welcome["resumed"] is True and again.id == ada.id
            # active again (a join, with status active, when c had taken it for gone)
            await watcher.told(id=ada.id, status="active")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # a is back, and says so (its key had lapsed: it re-writes its presence and tells).
        await wait_for(lambda: _healthz_up(a), 15, "node a back")
        for round_ in range(3):
            x = 0.1 * (round_ + 1)
            await again.client.send({"type": "move", "x": x, "y": 0.5})
            await watcher.told(type="move", sender=ada.id, x=x)
            await watcher.client.send({"type": "move", "x": x, "y": 0.25})
            await again.told(type="move", sender=watcher.id, x=x)
        told = [(m.get("type"), m.get("id")) for m in watcher.history]
        assert ("leave", ada.id) not in told, told
    finally:
        await close_all(tabs)


async def _healthz_up(node: Node) -> bool:
    return bool((await node.healthz())["backplane"] == "up")
