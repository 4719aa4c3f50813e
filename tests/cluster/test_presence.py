"""Presence and identity across nodes (issue #13): colours distinct in a room whatever node
each member is on, a resume on another node, and a resume after a node restarted (the record
lives in Redis). Nodes are real processes sharing a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.cluster.procs import Cluster
from tests.support.clients import SessionClosed, SockJSClient, make_client

pytestmark = pytest.mark.cluster


class Tab:
    """A v2 client that keeps what it was told, and can present a resume key."""

    def __init__(self, transport: str = "websocket") -> None:
        self.client: SockJSClient = make_client(transport)
        self.welcome: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    @property
    def id(self) -> str:
        return str(self.welcome["id"])

    async def open(self, base_url: str, room: str, resume: str | None = None) -> Tab:
        query = f"v=2&room={room}" + (f"&resume={resume}" if resume else "")
        await self.client.connect(base_url, query=query, timeout=5)
        self.welcome = await self.client.recv_json_until(lambda m: m.get("type") == "welcome")
        return self

    async def told(self, **fields: Any) -> dict[str, Any]:
        def match(message: Any) -> bool:
            return all(message.get(k) == v for k, v in fields.items())

        for message in self.history:
            if match(message):
                return message
        try:
            found: dict[str, Any] = await self.client.recv_json_until(match, 10)
        finally:
            self.history += self.client.skipped
        self.history.append(found)
        return found

    async def knows(self, member: str) -> None:
        """Wait until this tab knows `member`: listed in its welcome, or told of its join
        since (a welcome is a snapshot, so which of the two depends on who came first)."""
        if member not in {u["id"] for u in self.welcome["users"]}:
            await self.told(type="join", id=member)

    async def close(self) -> None:
        await self.client.close()


async def close_all(tabs: list[Tab]) -> None:
    for tab in tabs:
        with contextlib.suppress(Exception):  # teardown: the others must still be closed
            await tab.close()


async def test_colours_in_a_room_differ_across_nodes(cluster: Cluster) -> None:
    a, b = await cluster.start_nodes(2)
    tabs = [Tab() for _ in range(8)]
    try:
        # All at once, half on each node: the choice is atomic over the nodes.
        await asyncio.gather(
            *(tab.open((a, b)[i % 2].ws_url, "colours") for i, tab in enumerate(tabs))
        )
        colors = [tab.welcome["color"] for tab in tabs]
        assert len(set(colors)) == len(colors), colors
    finally:
        await close_all(tabs)


async def test_a_tab_resumes_on_another_node_and_nobody_sees_a_leave(cluster: Cluster) -> None:
    a, b = await cluster.start_nodes(2)
    tabs: list[Tab] = []
    try:
        ada = await Tab().open(a.ws_url, "r", None)
        tabs.append(ada)
        on_a = await Tab().open(a.ws_url, "r")
        on_b = await Tab("xhr-streaming").open(b.ws_url, "r")
        tabs += [on_a, on_b]
        await ada.client.send({"type": "move", "x": 0.25, "y": 0.5})
        for watcher in (on_a, on_b):
            await watcher.told(type="move", sender=ada.id, x=0.25)

        await ada.close()
        for watcher in (on_a, on_b):
            await watcher.told(type="presence", id=ada.id, status="reconnecting")

        again = await Tab().open(b.ws_url, "r", ada.welcome["resume"])
        tabs.append(again)
        assert again.welcome["resumed"] is True
        assert (again.id, again.welcome["color"]) == (ada.id, ada.welcome["color"])
        assert {u["id"] for u in again.welcome["users"]} == {on_a.id, on_b.id}
        for watcher in (on_a, on_b):
            await watcher.told(type="presence", id=ada.id, status="active")
        await again.client.send({"type": "move", "x": 0.75, "y": 0.5})
        for watcher in (on_a, on_b):
            await watcher.told(type="move", sender=ada.id, x=0.75)
            told = [(m.get("type"), m.get("id")) for m in watcher.history]
            assert ("leave", ada.id) not in told
            assert told.count(("join", ada.id)) <= 1  # the first join only

        # A newcomer on node a sees it once, active, held by node b now.
        late = await Tab().open(a.ws_url, "r")
        tabs.append(late)
        listed = [u for u in late.welcome["users"] if u["id"] == ada.id]
        assert [(u["status"], u["x"]) for u in listed] == [("active", 0.75)]
    finally:
        await close_all(tabs)


async def test_a_tab_resumes_after_its_node_restarted(cluster: Cluster) -> None:
    (a,) = await cluster.start_nodes(1)
    tabs: list[Tab] = []
    try:
        ada = await Tab().open(a.ws_url, "r")
        tabs.append(ada)
        a.stop()  # SIGTERM: sessions closed, their identities kept in Redis for the grace
        a.spawn()
        await a.wait_ready()
        again = await Tab().open(a.ws_url, "r", ada.welcome["resume"])
        tabs.append(again)
        assert again.welcome["resumed"] is True
        assert (again.id, again.welcome["color"]) == (ada.id, ada.welcome["color"])
        # One live session per key, the newest: presented again, the key takes the identity
        # over and the older session is closed with 4004 (docs/protocol.md, Resume).
        other = await Tab().open(a.ws_url, "r", ada.welcome["resume"])
        tabs.append(other)
        assert other.welcome["resumed"] is True and other.id == ada.id
        with pytest.raises(SessionClosed) as closed:
            while True:
                await again.client.recv()
        assert closed.value.closed_with == (4004, "Resumed by another connection")
    finally:
        await close_all(tabs)
