"""Cross-node takeover of a resume key (docs/protocol.md, Resume): one live session per key,
the newest, whichever node holds the older one. Real nodes sharing a real redis-server."""

from __future__ import annotations

import pytest

from tests.cluster.procs import Cluster
from tests.cluster.test_presence import Tab, close_all
from tests.support.clients import SessionClosed

pytestmark = pytest.mark.cluster


async def test_a_key_presented_on_another_node_takes_the_live_identity_over(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start_nodes(2)
    tabs: list[Tab] = []
    try:
        ada = await Tab().open(a.ws_url, "t")
        on_a = await Tab().open(a.ws_url, "t")
        on_b = await Tab("xhr-streaming").open(b.ws_url, "t")
        tabs += [ada, on_a, on_b]
        await ada.client.send({"type": "move", "x": 0.25, "y": 0.5, "name": "Ada"})
        for watcher in (on_a, on_b):
            await watcher.told(type="move", sender=ada.id, x=0.25)

        # Ada's session on a still lives; her key comes to b (a reconnect through another node).
        again = await Tab().open(b.ws_url, "t", ada.welcome["resume"])
        tabs.append(again)
        assert again.welcome["resumed"] is True
        assert (again.id, again.welcome["color"], again.welcome["name"]) == (
            ada.id, ada.welcome["color"], "Ada")  # fmt: skip
        with pytest.raises(SessionClosed) as closed:
            while True:
                await ada.client.recv()
        assert closed.value.closed_with == (4004, "Resumed by another connection")

        await again.client.send({"type": "move", "x": 0.75, "y": 0.5})
        for watcher in (on_a, on_b):
            await watcher.told(type="move", sender=ada.id, x=0.75)
            told = [(m.get("type"), m.get("id")) for m in watcher.history]
            assert ("leave", ada.id) not in told
            assert told.count(("join", ada.id)) <= 1  # the first join only

        # The key now resumes from b's session only: presented on a, it takes it from b.
        third = await Tab().open(a.ws_url, "t", ada.welcome["resume"])
        tabs.append(third)
        assert third.welcome["resumed"] is True and third.id == ada.id
        with pytest.raises(SessionClosed) as closed:
            while True:
                await again.client.recv()
        assert closed.value.closed_with == (4004, "Resumed by another connection")
        await third.client.send({"type": "move", "x": 0.5, "y": 0.125})
        for watcher in (on_a, on_b):
            await watcher.told(type="move", sender=ada.id, x=0.5)
            told = [(m.get("type"), m.get("id")) for m in watcher.history]
            assert ("leave", ada.id) not in told
        late = await Tab().open(b.ws_url, "t")
        tabs.append(late)
        assert [u["status"] for u in late.welcome["users"] if u["id"] == ada.id] == ["active"]
    finally:
        await close_all(tabs)
