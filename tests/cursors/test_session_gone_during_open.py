"""A session whose client gives up while the app is still on its OPEN (the `o` frame goes out
at once; the app's OPEN may wait seconds on the resume store, as after a node was killed).

- A newcomer's session closed meanwhile never joins: nobody is told it came and, a moment
  later, that it left (under load, a browser drops a first connection that opened fine).
- A resume's session closed meanwhile keeps the identity for the next try: its client has the
  key (it presented it), so the member is reconnecting, not gone, and the key still resumes it.

The store's `take` is held on a gate while the client closes; the server has then closed the
session (its CLOSE waits for OPEN), and the gate is opened.

And the welcome is the first thing a session is told: while OPEN still writes the resume
record, the room's news must not overtake it (the page resets its people from the welcome,
and a position told before it was lost).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from cursorshare.cursors import identity
from cursorshare.hub import JSON, MemoryTtlStore
from cursorshare.server import CURSORS, SOCKJS
from tests.cluster.procs import wait_for

from .conftest import Connect, is_leave, is_move_from, is_presence, welcome_of

TIMEOUT = 5.0


class GatedStore(MemoryTtlStore):
    """A store whose `take` (or, with ``gate_hold``, `hold`) waits for `gate` while
    `holding` is true."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.holding = False
        self.gate_hold = False
        self.waiting = asyncio.Event()

    async def _pass(self) -> None:
        self.waiting.set()
        await self.gate.wait()

    async def take(self, key: str, scope: str = "") -> JSON | None:
        if self.holding and not self.gate_hold:
            await self._pass()
        return await super().take(key, scope)

    async def hold(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        if self.holding and self.gate_hold:
            await self._pass()
        await super().hold(key, record, ttl, scope)


def gated(app: web.Application) -> GatedStore:
    store = GatedStore()
    app[CURSORS].store = store
    return store


async def closed_during_open(app: web.Application, store: GatedStore, client: Any) -> None:
    """Close ``client`` while its OPEN waits on the store, then let OPEN go on."""
    await asyncio.wait_for(store.waiting.wait(), TIMEOUT)
    sessions = len(app[SOCKJS])
    await client.close()
    await wait_for(lambda: _true(len(app[SOCKJS]) < sessions), TIMEOUT, "its session closed")
    store.holding = False
    store.gate.set()


async def _true(value: bool) -> bool:
    return value


async def test_a_newcomer_gone_during_open_is_never_announced(
    app: web.Application, connect: Connect
) -> None:
    store = gated(app)
    watcher = await connect("websocket", room="gone")
    watcher_id = (await welcome_of(watcher))["id"]
    store.holding = True
    # A well-formed key nobody holds: OPEN looks it up, then joins someone new.
    gone = await connect("websocket", room="gone", resume=identity.new_key())
    await closed_during_open(app, store, gone)
    marker = await connect("websocket", room="gone", name="marker")
    marker_id = (await welcome_of(marker))["id"]
    await watcher.recv_json_until(lambda m: m.get("type") == "join" and m["id"] == marker_id)
    told = [
        m for m in watcher.skipped if m.get("type") in ("join", "leave") and m["id"] != watcher_id
    ]
    assert told == [], told


async def test_a_resume_gone_during_open_keeps_the_identity(
    app: web.Application, connect: Connect
) -> None:
    store = gated(app)
    watcher = await connect("websocket", room="again")
    await welcome_of(watcher)
    tab = await connect("websocket", room="again")
    first = await welcome_of(tab)
    await tab.close()
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
    store.holding = True
    retry = await connect("websocket", room="again", resume=first["resume"])
    await closed_during_open(app, store, retry)
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
    assert not [m for m in watcher.skipped if is_leave(first["id"])(m)], watcher.skipped
    back = await connect("websocket", room="again", resume=first["resume"])
    welcome = await welcome_of(back)
    assert (welcome["resumed"], welcome["id"]) == (True, first["id"])


async def test_the_welcome_comes_before_the_room_s_news(
    app: web.Application, connect: Connect
) -> None:
    store = gated(app)
    watcher = await connect("websocket", room="news")
    watcher_id = (await welcome_of(watcher))["id"]
    store.holding = store.gate_hold = True
    newcomer = await connect("websocket", room="news")
    await asyncio.wait_for(store.waiting.wait(), TIMEOUT)  # OPEN writes the resume record
    await watcher.send({"type": "move", "x": 0.5, "y": 0.25})
    try:
        await newcomer.recv_json_until(is_move_from(watcher_id, x=0.5, y=0.25))
        assert [m.get("type") for m in newcomer.skipped][:1] == ["welcome"], newcomer.skipped
    finally:
        store.gate.set()
