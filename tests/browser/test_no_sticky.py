"""Chromium without sticky routing (issue #15): HAProxy `balance roundrobin` over three nodes,
and separately `cursorshare serve --workers 3`, with a real redis-server behind both.

Every request of a page's session may land on any node; the nodes serve it through the
session directory (docs/deploy.md, "Without sticky routing"). Through each deployment:

- pages on all nine sockjs-client transports share one room: every page really runs on its
  transport, sees every other page's moves and, when it closes, its leave within seconds
  though the nodes run the default resume grace (120 s): the page's `POST /presence/bye`
  names its key, so it ends the member on whichever node holds it, even when the session's
  own `bye` lost the race with the page's aborted receiving request;
- no one who stays is reported as leaving, joining again or reconnecting while its requests
  hop nodes (each page records every SockJS message it receives, from before its welcome);
- a polling page's requests land on several nodes (HAProxy's `X-Cursorshare-Node` response
  header on the page's own requests; the nodes' `/healthz` `forwarded` counters);
- a node killed with SIGKILL mid-session: its pages come back through the others as
  themselves (same id, colour and name), and no one sees them leave.

One deployment serves every test of this module (the tests run deployment by deployment, the
node-killing test last); the deployments are in tests/browser/nosticky.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.cluster.procs import RedisServer, wait_for

from .conftest import ALL_TRANSPORTS, DISCONNECT_DELAY, App, Apps
from .nosticky import Deployment, behind_haproxy, with_workers

pytestmark = [pytest.mark.browser, pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

#: Upper bound on a closed page's leave reaching every page (an event is waited for): far
#: below the nodes' 120 s resume grace, so a leave that came by the grace fails the test.
LEAVE_WITHIN = 10.0
#: Transports whose every receive is a new request: the ones that hop nodes the most.
POLLING = ("xhr-polling", "iframe-xhr-polling", "jsonp-polling")
#: Upper bound on a page coming back after its node was killed (an event is waited for):
#: detection (HAProxy's check, the node's 3 s liveness key, the 1 s watch), the app's
#: reconnect backoff and Chromium on a loaded CI machine. The measured figure is printed.
BACK_WITHIN = 30.0
#: Seconds from a node's SIGKILL to its pages' new welcome: the disconnect delay, plus the
#: detection of a dead owner its relays wait for (its liveness key's 3 s TTL and the 1 s
#: watch, docs/limits.md), plus the app's first reconnect backoffs (0.5 s, then 1 s).
DEAD_NODE_BACK = DISCONNECT_DELAY + 3 + 1 + 1.5
#: Requests of a SockJS session: /ws/<server>/<session>/<what>.
SESSION_REQUEST = re.compile(
    r"/ws/[^/]+/[^/]+/(xhr|xhr_send|xhr_streaming|eventsource|htmlfile|jsonp|jsonp_send)\b"
)

#: Records every SockJS message the page receives, with the time it came (top frame only:
#: the iframe transports' frames run their own SockJS, which the page never reads).
RECORD_MESSAGES = """(() => {
  if (window.top !== window) return;
  window.__received = [];
  let sockjs;
  Object.defineProperty(window, 'SockJS', {
    configurable: true,
    get() { return sockjs; },
    set(value) {
      sockjs = value;
      const dispatch = value.prototype.dispatchEvent;
      value.prototype.dispatchEvent = function (event) {
        if (event.type === 'message') window.__received.push([Date.now(), event.data]);
        return dispatch.apply(this, arguments);
      };
    },
  });
})();"""


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["haproxy", "workers"])
async def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    tmp = tmp_path_factory.mktemp(request.param)
    redis = RedisServer(tmp)
    await redis.start()
    start = behind_haproxy if request.param == "haproxy" else with_workers
    try:
        async with start(redis, tmp) as deployed:
            yield deployed
        print(deployed.logs())  # shown with the module's last test when it failed
    finally:
        redis.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def pages(browser: Browser, deployment: Deployment) -> AsyncIterator[Apps]:
    opened = Apps(browser, deployment.front)
    yield opened
    await opened.close_all()


# ---- what the pages received ---------------------------------------------------------------


async def open_pages(pages: Apps, room: str, transports: tuple[str, ...]) -> list[App]:
    """One page per transport in ``room``, each recording what it receives."""
    opened = await asyncio.gather(
        *(
            pages.open(room=room, name=t, transports=t, init_script=RECORD_MESSAGES)
            for t in transports
        )
    )
    for app, transport in zip(opened, transports, strict=True):
        info = await app.info()
        assert info["sockTransport"] == transport, (info, app.diagnostics())
    return list(opened)


async def received(app: App) -> list[tuple[int, dict[str, Any]]]:
    """(time in ms, message) of every SockJS message the page received."""
    raw: list[list[Any]] = await app.page.evaluate("window.__received")
    return [(at, json.loads(data)) for at, data in raw]


def flicker(
    messages: list[tuple[int, dict[str, Any]]], stayers: set[str], settled: int
) -> list[dict[str, Any]]:
    """What told this page that someone who stayed left, was reconnecting or came again:
    a leave, a `reconnecting`, a second join or welcome, or any join once the room had
    ``settled`` (page time, ms). (Before that a join may follow the welcome that listed the
    newcomer already: pages open at once, and the welcome is a snapshot.)"""
    joins = Counter(str(m["id"]) for _, m in messages if m.get("type") == "join")
    out = [m for _, m in messages if m.get("type") == "welcome"][1:]  # the page reconnected
    for at, m in messages:
        kind, who = m.get("type"), str(m.get("id"))
        if who not in stayers:
            continue
        if (
            kind == "leave"
            or (kind == "presence" and m.get("status") == "reconnecting")
            or (kind == "join" and (joins[who] > 1 or at > settled))
        ):
            out.append(m)
    return out


async def assert_no_flicker(
    apps: list[App], stayers: set[str], settled: int, deployment: Deployment
) -> None:
    for app in apps:
        told = flicker(await received(app), stayers, settled)
        if told:
            logs = deployment.logs()
            print(logs)  # which node dropped whom, and why
            if "Redis backplane down" in logs:
                # A node's link to Redis timed out (a loaded machine): its relayed sessions
                # were cut and their pages resumed, shown `reconnecting` meanwhile, as
                # docs/deploy.md says of a mailbox link that drops. Not a flicker.
                continue
        assert not told, (app.name, told, {a.name: a.diagnostics() for a in apps})


async def now(app: App) -> int:
    """The page's clock, in ms: the one `RECORD_MESSAGES` stamps messages with."""
    ms: int = await app.page.evaluate("Date.now()")
    return ms


async def everyone_sees_everyone_move(apps: list[App], round_: int) -> None:
    # (x from 0.1 to 0.82: an 800x600 view shows the stage from x 0.083 to 0.917)
    for i, mover in enumerate(apps):
        at = await mover.point(0.1 + 0.09 * i, 0.2 + 0.15 * round_, steps=2)
        # A page may be reconnecting: on a loaded machine a node's Redis link can time out
        # (2 s), and a request for another node's session then ends it (docs/deploy.md, Redis
        # goes away); the page resumes, sends its last position again, and keeps its id.
        await mover.wait_open(30)
        who = await mover.id()
        await asyncio.gather(
            *(app.wait_cursor(who, at, name=mover.name) for app in apps if app is not mover)
        )


# ---- the tests -----------------------------------------------------------------------------


async def test_all_nine_transports_share_a_room(pages: Apps, deployment: Deployment) -> None:
    apps = await open_pages(pages, f"mixed-{deployment.name}", ALL_TRANSPORTS)
    ids = {app.name: await app.id() for app in apps}
    await everyone_sees_everyone_move(apps, 0)  # everyone knows everyone
    settled = await now(apps[0])
    for round_ in (1, 2):  # more rounds: the polling pages hop nodes many times
        await everyone_sees_everyone_move(apps, round_)
    await assert_no_flicker(apps, set(ids.values()), settled, deployment)
    for app in apps:
        assert not app.unexpected_errors(), (app.name, app.errors)

    # Sessions were served by relaying: requests arrived at nodes that did not hold them.
    health = await deployment.health()
    print(f"{deployment.name}: relayed requests by node {forwarded_out(health)}")
    if deployment.name == "haproxy":  # it sends each request to the next node
        assert sum(h["forwarded"]["out"] for h in health.values()) > 0, health
    # (With --workers the kernel picks a worker per connection, and Chromium keeps a page's
    # connections alive: whether any request hops is up to the kernel's hash; the relaying is
    # asserted where it is certain, behind HAProxy.)

    # One session per page, once a page's abandoned first attempt (sockjs-client gives up on a
    # transport after about a second on a loaded machine, and the app connects again) has
    # passed its disconnect delay.
    async def one_session_per_page() -> bool:
        return sum(h["sessions"] for h in (await deployment.health()).values()) == len(apps)

    await wait_for(one_session_per_page, 15, "one session per page")

    # Leaves, in two batches: each closed page's cursor goes from every page left, which
    # are told it left, at once after its `bye` (over the session or `POST /presence/bye`).
    staying = list(apps)
    for batch in (staying[:4], staying[4:8]):
        closed_at = time.monotonic()
        await asyncio.gather(*(leaver.close() for leaver in batch))
        staying = [app for app in staying if app not in batch]
        gone = {leaver.name: ids[leaver.name] for leaver in batch}
        took = await leaves_seen(staying, gone, deployment)
        for app in staying:
            leaves = {m["id"] for _, m in await received(app) if m.get("type") == "leave"}
            assert set(gone.values()) <= leaves, (app.name, gone, leaves)
        await assert_no_flicker(staying, {ids[a.name] for a in staying}, settled, deployment)
        by_leaver = {name: max(took[i :: len(gone)]) for i, name in enumerate(gone)}
        print(
            f"{deployment.name}: closed pages gone everywhere after (s)"
            f" { {name: round(t, 1) for name, t in by_leaver.items()} }"
            f" ({time.monotonic() - closed_at:.1f} s)"
        )


async def leaves_seen(
    staying: list[App], gone: dict[str, str], deployment: Deployment
) -> list[float]:
    """Seconds until each closed page's cursor left each staying page (staying-major order).
    On a timeout, what every staying page was told about the closed ones, and the nodes'
    logs: which of the paths of a leave (the session's bye, the beacons) went missing."""
    try:
        return await asyncio.gather(
            *(app.wait_cursor_gone(who, LEAVE_WITHIN) for app in staying for who in gone.values())
        )
    except AssertionError:
        ids = set(gone.values())
        for app in staying:
            about = [
                (at, m)
                for at, m in await received(app)
                if str(m.get("id")) in ids or str(m.get("sender")) in ids
            ]
            told = [m for _, m in about if m.get("type") != "move"]
            print(f"{app.name} was told, of {gone}: {told}")
        print(deployment.logs())
        raise


def nodes_of_session(app: App) -> Counter[str]:
    """The node (HAProxy's X-Cursorshare-Node) of each response to the page's SockJS session
    requests (the iframe transports' included: they are the page's frames)."""
    served: Counter[str] = Counter()
    for response in app.responses:
        if SESSION_REQUEST.search(response.url):
            served[response.headers.get("x-cursorshare-node", "")] += 1
    return served


def forwarded_out(health: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {node: h["forwarded"]["out"] for node, h in health.items()}


# HAProxy only: it sends each request to the next node. With `--workers` the kernel picks a
# worker per *connection*, and Chromium keeps a page's few connections alive, so whether one
# page's requests reach two workers is up to the kernel's hash (the mixed room's relaying
# counters show the workers' requests hop).
@pytest.mark.parametrize("deployment", ["haproxy"], indirect=True)
@pytest.mark.parametrize("transport", POLLING)
async def test_a_polling_page_is_served_by_several_nodes(
    pages: Apps, deployment: Deployment, transport: str
) -> None:
    # The watcher's websocket is one connection to one node: it is never relayed, so the
    # relaying counted here is the polling page's alone.
    watcher, poller = await open_pages(pages, f"poll-{transport}", ("websocket", transport))
    poller_id = await poller.id()
    await poller.wait_people([transport, "websocket"])
    settled = await now(poller)
    before = forwarded_out(await deployment.health())
    moves = 0

    async def requests_hopped() -> bool:
        nonlocal moves
        moves += 1
        at = await poller.point(0.1 + 0.02 * (moves % 40), 0.5, steps=1)
        await watcher.wait_cursor(poller_id, at, name=transport)
        after = forwarded_out(await deployment.health())
        return any(after[node] > before.get(node, 0) for node in after)

    # Each move is a send, a new request, and the next poll follows it.
    await wait_for(requests_hopped, 40, f"{transport}: a request relayed", interval=0)
    served = nodes_of_session(poller)
    print(f"{transport}: {moves} moves; the session's requests by node {dict(served)}")
    assert len(set(served) - {""}) >= 2, served
    await assert_no_flicker([watcher, poller], {poller_id, await watcher.id()}, settled, deployment)


async def test_a_killed_node_s_pages_come_back_as_themselves(
    pages: Apps, deployment: Deployment
) -> None:
    """The pages of a SIGKILLed node resume their identities on the others, no one is told
    anyone left, and everyone sees everyone's next move (docs/deploy.md, When a node dies)."""
    apps = await open_pages(pages, f"kill-{deployment.name}", ALL_TRANSPORTS)
    await everyone_sees_everyone_move(apps, 0)
    identities = {app.name: await identity(app) for app in apps}
    health = await deployment.health()
    victim = max(health, key=lambda node: health[node]["sessions"])
    assert health[victim]["sessions"] > 0, health
    killed_at = await now(apps[0])
    deployment.kill(victim)
    start = time.monotonic()

    # Everyone moves again; each page's last position is sent again after a reconnect, so
    # every other page sees each at its new spot (by name: the id is compared below).
    spots = await asyncio.gather(
        *(app.point(0.1 + 0.09 * i, 0.8, steps=2) for i, app in enumerate(apps))
    )
    try:
        await everyone_sees_where_all_went(apps, spots)
    except AssertionError:
        for app in apps:  # what each page was told and logged, for the failure
            print(await story(app, killed_at, identities[app.name]))
        raise
    took = time.monotonic() - start

    reconnected: dict[str, float] = {}
    changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    leaves: dict[str, list[dict[str, Any]]] = {}
    for app in apps:
        await app.wait_open(BACK_WITHIN)
        if (now_is := await identity(app)) != identities[app.name]:
            changed[app.name] = (identities[app.name], now_is)
        messages = await received(app)
        welcomes = [at for at, m in messages if m.get("type") == "welcome"]
        if len(welcomes) > 1:
            reconnected[app.name] = round((welcomes[-1] - killed_at) / 1000, 2)
        if told := [m for _, m in messages if m.get("type") == "leave"]:
            leaves[app.name] = told
    print(
        f"{deployment.name}: {victim} killed ({health[victim]['sessions']} sessions);"
        f" pages back after (s) {reconnected}; everyone seen moving after {took:.1f} s"
    )
    if changed or leaves:
        for app in apps:  # what each page was told and logged, for the failure below
            print(await story(app, killed_at, identities[app.name]))
    assert reconnected, "no page was on the killed node"
    assert max(reconnected.values()) <= DEAD_NODE_BACK, reconnected
    assert not changed, f"pages back with another identity (before, after): {changed}"
    assert not leaves, f"pages told someone left: {leaves}"


async def everyone_sees_where_all_went(apps: list[App], spots: list[tuple[float, float]]) -> None:
    """Every page sees each other page's cursor at its spot (by name: ids are compared apart)."""
    for mover, at in zip(apps, spots, strict=True):
        await asyncio.gather(
            *(app.wait_for(
                f"{mover.name}'s cursor at {at}",
                """([name, x, y]) => Array.from(document.querySelectorAll('#cursors .cursor'))
                    .some(el => el.querySelector('.cursor-name').textContent === name
                        && !el.hidden && Math.abs(Number(el.dataset.x) - x) < 1e-4
                        && Math.abs(Number(el.dataset.y) - y) < 1e-4)""",
                [mover.name, *at],
                within=BACK_WITHIN,
            ) for app in apps if app is not mover)
        )  # fmt: skip


async def story(app: App, killed_at: int, was: dict[str, Any]) -> str:
    """The page's messages (moves in short), seconds from the kill, and its console."""
    told = [
        f"{(at - killed_at) / 1000:+.2f} {json.dumps({k: v for k, v in m.items() if k != 'users'})}"
        if m.get("type") != "move"
        else f"{(at - killed_at) / 1000:+.2f} move {m.get('name')} {m.get('x')} {m.get('y')}"
        for at, m in await received(app)
    ]
    return f"--- {app.name} {was}\n" + "\n".join([*told, *app.console[-10:]])


async def identity(app: App) -> dict[str, Any]:
    ident: dict[str, Any] = await app.page.evaluate(
        "() => ({id: cursorshare.id, color: cursorshare.color, name: cursorshare.name})"
    )
    return ident
