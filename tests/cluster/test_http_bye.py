"""`POST /presence/bye` landing on the node that does not hold the member (issue #13 behind a
round-robin balancer): the member, live or dropped on the other node, leaves at once for
everyone, not after the resume grace (the nodes run the default, 120 s), and its key gives
nothing back. Nodes are real processes sharing a real redis-server."""

from __future__ import annotations

import aiohttp
import pytest

from tests.cluster.procs import Cluster, Node
from tests.cluster.test_presence import Tab, close_all

pytestmark = pytest.mark.cluster


async def post_bye(node: Node, key: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{node.url}/presence/bye",
            data=key.encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        ) as response,
    ):
        return response.status


@pytest.mark.parametrize("dropped_first", [False, True], ids=["live", "dropped"])
async def test_a_bye_on_the_other_node_ends_the_member_at_once(
    cluster: Cluster, dropped_first: bool
) -> None:
    a, b = await cluster.start_nodes(2)
    tabs: list[Tab] = []
    try:
        closing = await Tab("xhr-streaming").open(a.ws_url, "far")
        on_a = await Tab().open(a.ws_url, "far")
        on_b = await Tab().open(b.ws_url, "far")
        tabs += [closing, on_a, on_b]
        assert closing.welcome["grace"] == 120
        await on_b.knows(on_a.id)  # node b sees node a's members
        if dropped_first:  # the page's aborted request reached its node first
            await closing.close()
            for watcher in (on_a, on_b):
                await watcher.told(type="presence", id=closing.id, status="reconnecting")

        assert await post_bye(b, closing.welcome["resume"]) == 204
        for watcher in (on_a, on_b):  # well within the 120 s grace (told() waits 10 s)
            await watcher.told(type="leave", id=closing.id)

        again = await Tab().open(a.ws_url, "far", closing.welcome["resume"])
        tabs.append(again)
        assert again.welcome["resumed"] is False and again.id != closing.id
    finally:
        await close_all(tabs)
