"""Resume and leave (issue #13): the tab's resume key, `bye` on pagehide, server restarts
with and without Redis, two nodes.

The page keeps the welcome's `resume` key in sessionStorage and presents it on reconnect;
with Redis the identity (id, colour, name) survives a server restart; without Redis the
page reconnects on its own as someone new. A closed tab says `bye` and leaves at once.
Several of these need the server side of issue #13 (S13): they say so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.cluster.procs import RedisServer

from .conftest import DISCONNECT_DELAY, App, Apps, Servers

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def identity(app: App) -> dict[str, object]:
    ident: dict[str, object] = await app.page.evaluate(
        "() => ({id: cursorshare.id, color: cursorshare.color, name: cursorshare.name,"
        " resumed: cursorshare.resumed})"
    )
    return ident


async def back_open(app: App) -> None:
    await app.wait_for(
        "reconnected", "() => cursorshare.state === 'open' && cursorshare.id !== null", within=30
    )


async def test_a_restart_without_redis_reconnects_as_someone_new(
    apps: Apps, servers: Servers
) -> None:
    srv = servers.start()
    ada = await apps.open(room="restart", name="Ada", origin=srv.url)
    bo = await apps.open(room="restart", name="Bo", origin=srv.url)
    before = await identity(ada)
    srv = servers.restart(srv)
    await back_open(ada)
    await back_open(bo)
    await bo.wait_people(["Bo", "Ada"], within=30)
    await ada.wait_people(["Ada", "Bo"], within=30)
    after = await identity(ada)
    assert after["name"] == "Ada"
    assert after["id"] != before["id"] and after["resumed"] is not True, (before, after)


async def test_a_restart_with_redis_gives_the_same_identity_back(
    apps: Apps, servers: Servers, redis_server: RedisServer
) -> None:
    """Needs S13: the resume record in Redis."""
    srv = servers.start("--redis-url", redis_server.url)
    ada = await apps.open(room="restart", name="Ada", origin=srv.url)
    bo = await apps.open(room="restart", name="Bo", origin=srv.url)
    key = await ada.page.evaluate(
        "() => Object.keys(sessionStorage).filter(k => k.startsWith('cursorshare.resume'))"
    )
    assert len(key) == 1, key
    before = await identity(ada)
    srv = servers.restart(srv, "--redis-url", redis_server.url)
    await back_open(ada)
    await ada.wait_for("the welcome says resumed", "() => cursorshare.resumed === true", within=30)
    after = await identity(ada)
    assert (after["id"], after["color"], after["name"]) == (
        before["id"],
        before["color"],
        before["name"],
    )
    await bo.wait_people(["Bo", "Ada"], within=30)
    assert str(before["id"]) in [p["id"] for p in await bo.people()]


async def test_two_nodes_list_each_other_and_a_dropped_node_is_reconnecting(
    apps: Apps, servers: Servers, redis_server: RedisServer
) -> None:
    """Needs S13 for `reconnecting` and the resumed id across the restart."""
    one = servers.start("--redis-url", redis_server.url, "--node-id", "one")
    two = servers.start("--redis-url", redis_server.url, "--node-id", "two")
    ada = await apps.open(room="nodes", name="Ada", origin=one.url)
    bo = await apps.open(room="nodes", name="Bo", origin=two.url)
    # neither has moved: each node's page lists the other's user
    await ada.wait_people(["Ada", "Bo"])
    await bo.wait_people(["Bo", "Ada"])
    ada_id = await ada.id()
    at = await ada.point(0.5, 0.5)
    await bo.wait_cursor(ada_id, at, name="Ada")
    # Ada's node goes away: Bo sees her reconnecting (not gone); she comes back as herself
    servers.stop(one)
    await bo.wait_status(ada_id, "reconnecting", within=30)
    servers.restart(one, "--redis-url", redis_server.url, "--node-id", "one")
    await back_open(ada)
    await bo.wait_status(ada_id, "active", within=30)
    assert await ada.id() == ada_id


async def test_a_closed_tab_says_bye_and_leaves_at_once(apps: Apps, room: str) -> None:
    """Needs S13: `bye` skips the resume grace (without it, others would see `reconnecting`)."""
    ada = await apps.open(room=room, name="Ada")
    bo = await apps.open(room=room, name="Bo")
    ada_id = await ada.id()
    await bo.page.evaluate(
        """(id) => {
            window.__statuses = [];
            new MutationObserver(() => {
                const li = document.querySelector('#people-list .person[data-id="' + id + '"]');
                if (li) window.__statuses.push(li.dataset.status);
            }).observe(document.getElementById('people-list'),
                       {subtree: true, attributes: true, childList: true});
        }""",
        ada_id,
    )
    await ada.close()
    await bo.wait_people(["Bo"], within=DISCONNECT_DELAY + 4)
    assert "reconnecting" not in await bo.page.evaluate("window.__statuses")
