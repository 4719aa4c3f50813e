"""A node that stalls past its liveness TTL, then carries on (issue #15 under load): a loaded
machine can hold a process off its CPU for seconds (CI shares 2 cores with Chromium), and the
other nodes then take it for dead. When it runs again its members are live again for
everyone, and a bye for one of them, over its session or `POST /presence/bye` on another
node, still ends it at once. SIGSTOP and SIGCONT stand for the stall: nothing is closed."""

from __future__ import annotations

import os
import signal

from tests.cluster.procs import Cluster
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
