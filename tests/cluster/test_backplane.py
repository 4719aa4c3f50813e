"""RedisBackplane instances in one process, on a real redis-server.

States here are opaque to the backplane (``{"label", "step"}``): it carries presence records
and batches of events without knowing what they mean.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from cursorshare.backplanes.redis.keys import (
    DELETE_IF_CONTAINS,
    DELETE_IF_DEAD,
    Entry,
    needle,
)
from cursorshare.hub import Change, Kind, PresenceChange
from tests.cluster.backplanes import join, leave, move, settle, state
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster


async def test_channel_per_room_and_own_messages_ignored(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, got_a = await make("a")
    b, got_b = await make("b")
    c, got_c = await make("c")
    assert await a.join_room("x") == []
    assert await c.join_room("x") == []
    assert await b.join_room("y") == []
    keys = a.keys

    redis = redis_server.client()
    try:
        counts = dict(await redis.pubsub_numsub(keys.channel("x"), keys.channel("y")))
        assert counts == {keys.channel("x").encode(): 2, keys.channel("y").encode(): 1}

        # A third subscriber of room x sees exactly one message per publish.
        spy = redis.pubsub()
        await spy.subscribe(keys.channel("x"))
        assert (await spy.get_message(timeout=2))["type"] == "subscribe"

        event, first = join("u1")
        a.publish("x", [event], {"u1": first})
        moved, now = move("u1", 0.5)
        a.publish("x", [moved], {"u1": now})

        await settle(lambda: len(got_c.of("x")) == 2)
        assert [e.kind for e in got_c.of("x")] == [Kind.JOIN, Kind.MOVE]
        assert got_c.of("x")[1].data == {"step": 0.5}
        assert got_c.of("x")[1].state == now
        assert all(not e.local for e in got_c.of("x"))
        wire = [await spy.get_message(timeout=2) for _ in range(2)]
        assert [orjson.loads(m["data"])["node"] for m in wire] == ["a", "a"]
        assert await spy.get_message(timeout=0.3) is None  # one message per publish call

        # Nothing of room x reaches b (not subscribed), nothing reaches a (its own).
        await asyncio.sleep(0.3)
        assert got_b.events == got_b.changes == []
        assert got_a.events == got_a.changes == []

        # The presence hash carries the whole state and the process that wrote it.
        raw = await redis.hget(keys.presence("x"), "u1")
        assert raw is not None
        assert Entry.decode(raw) == Entry("a", a.instance, now)

        # Leaving the room unsubscribes. (UNSUBSCRIBE is not waited for: Redis may answer
        # another connection's NUMSUB first.)
        await c.leave_room("x")

        async def unsubscribed() -> bool:
            counts = dict(await redis.pubsub_numsub(keys.channel("x")))
            return bool(counts[keys.channel("x").encode()] == 2)  # a and the spy

        await wait_for(unsubscribed, 5, "c unsubscribed from room x")
        await spy.aclose()  # type: ignore[no-untyped-call]
    finally:
        await redis.aclose()


async def test_presence_snapshot_across_nodes(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    b, _ = await make("b")
    await a.join_room("r")
    for member, step in (("u1", 0.1), ("u2", None)):
        event, now = join(member, step)
        a.publish("r", [event], {member: now})
    event, now = join("u3", 0.3)
    a.publish("r", [event], {"u3": now})
    a.publish("r", [leave("u3")], {"u3": None})
    redis = redis_server.client()

    async def written(member: str, present: bool) -> bool:
        return bool(await redis.hexists(a.keys.presence("r"), member)) == present

    await wait_for(lambda: written("u3", False), 3, "u3 left")

    records = {r.member: r.state for r in await b.join_room("r")}
    assert records == {"u1": state("u1", 0.1), "u2": state("u2")}
    assert sorted(r.member for r in b.remote.records("r")) == ["u1", "u2"]

    # b's own members are not in its snapshot, but are in a's next one.
    event, now = join("v1", 0.9)
    b.publish("r", [event], {"v1": now})
    await wait_for(lambda: written("v1", True), 3, "v1 written")
    await redis.aclose()
    c, _ = await make("c")
    assert {r.member for r in await c.join_room("r")} == {"u1", "u2", "v1"}
    assert await b.join_room("r2") == []


async def test_dead_node_members_leave(make: Callable[..., Any], redis_server: RedisServer) -> None:
    a, _ = await make("a")
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    event, now = join("u1", 0.2)
    a.publish("r", [event], {"u1": now})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)

    # a dies: no farewell; its key and entries stay until others find its key expired.
    await a.stop(farewell=False)
    # (an upper bound on the event: the 3 s TTL and a 1 s sweep, on a loaded machine)
    await settle(lambda: len(got_b.changed("r", Change.LEFT)) == 1, within=15)
    assert got_b.changed("r") == [PresenceChange(Change.LEFT, "u1", {})]
    # It is gone from the hash too: a newcomer does not see it.
    redis = redis_server.client()
    try:

        async def removed() -> bool:
            return not await redis.hexists(b.keys.presence("r"), "u1")

        await wait_for(removed, 2, "u1 removed from the hash")
    finally:
        await redis.aclose()
    c, _ = await make("c")
    assert await c.join_room("r") == []


async def test_stale_entries_are_removed_only_if_unchanged(redis_server: RedisServer) -> None:
    """A node removes an entry it found stale only if nobody re-wrote it since."""
    redis = redis_server.client()
    try:
        old = Entry("x", "old", {"n": 1}).encode()
        new = Entry("x", "new", {"n": 1}).encode()
        await redis.hset("h", mapping={"u": new, "v": old})
        removed = await redis.eval(DELETE_IF_CONTAINS, 1, "h", "u", needle("old"), "v", old)
        assert removed == 1
        assert await redis.hgetall("h") == {b"u": new}
    finally:
        await redis.aclose()


async def test_entries_of_a_node_alive_again_are_not_removed(redis_server: RedisServer) -> None:
    """A sweeper removes a dead writer's entry only if the writer's liveness key, read in the
    same script, still does not hold the writer's token."""
    redis = redis_server.client()
    try:
        back = Entry("x", "back", {"n": 1}).encode()
        dead = Entry("y", "dead", {"n": 2}).encode()
        await redis.hset("h", mapping={"u": back, "v": dead})
        await redis.set("node:x", "back")
        await redis.set("node:y", "a later life")
        args = ["u", needle("back"), "back", "v", needle("dead"), "dead"]
        removed = await redis.eval(DELETE_IF_DEAD, 3, "h", "node:x", "node:y", *args)
        assert removed == 1
        assert await redis.hgetall("h") == {b"u": back}
    finally:
        await redis.aclose()


async def test_a_sweep_that_read_a_node_dead_keeps_what_it_re_wrote_since(
    make: Callable[..., Any], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI found this window: b read a's liveness key while it was gone (a stalled), a came
    back and re-wrote its key and its presence, then b's sweep removed the entry a had just
    re-written, for good (a had nothing more to re-write). Here b's sweep reads a as dead
    while a is alive: the entry must stay."""
    a, _ = await make("a")
    b, got_b = await make("b", reconcile_interval=60)
    await a.join_room("r")
    await b.join_room("r")
    event, now = join("u1", 0.4)
    a.publish("r", [event], {"u1": now})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)

    liveness = b.remote.liveness
    read_alive = liveness.tokens

    async def read_while_a_was_away(client: Any, nodes: set[str]) -> dict[str, str | None]:
        tokens = await read_alive(client, nodes)
        return {**tokens, "a": None}

    monkeypatch.setattr(liveness, "tokens", read_while_a_was_away)
    await settle(lambda: len(got_b.changed("r", Change.LEFT)) == 1, within=15)
    monkeypatch.undo()
    redis = redis_server.client()
    try:
        assert await redis.hexists(a.keys.presence("r"), "u1")
    finally:
        await redis.aclose()
    c, _ = await make("c")
    assert [(r.member, r.state) for r in await c.join_room("r")] == [("u1", now)]


async def test_clean_stop_removes_presence(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    await a.join_room("r")
    event, now = join("u1", 0.2)
    a.publish("r", [event], {"u1": now})
    await a.stop()
    redis = redis_server.client()
    try:
        assert await redis.hgetall(a.keys.presence("r")) == {}
        assert await redis.exists(a.keys.node("a")) == 0
    finally:
        await redis.aclose()


async def test_outbox_is_bounded_while_redis_is_away(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a", outbox_limit=100)
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    event, now = join("u1", 0.0)
    a.publish("r", [event], {"u1": now})
    await settle(lambda: len(got_b.of("r")) == 1)

    redis_server.stop()
    await settle(lambda: a.state == "down" and b.state == "down")
    for i in range(5000):  # publish is a plain call: it never waits for Redis
        moved, now = move("u1", i / 5000)
        a.publish("r", [moved], {"u1": now})
    assert len(a.outbox) == 100
    assert a.stats.dropped >= 4900

    await redis_server.start()
    await settle(lambda: a.state == "up" and b.state == "up", within=5)
    # The newest batches survived; the last state arrives.
    await settle(lambda: any(e.state == now for e in got_b.of("r", Kind.MOVE)))
    # And presence was re-written (Redis lost everything).
    c, _ = await make("c")
    assert [(r.member, r.state) for r in await c.join_room("r")] == [("u1", now)]


async def test_reconcile_after_outage(make: Callable[..., Any], redis_server: RedisServer) -> None:
    """What happened while Redis was away (and no batch told of it) is reported once it is
    back: joins, leaves, and the whole new state of members that changed meanwhile."""
    a, got_a = await make("a")
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    for member in ("gone", "stay"):
        event, now = join(member, 0.1)
        a.publish("r", [event], {member: now})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 2)

    redis_server.stop()
    await settle(lambda: a.state == "down" and b.state == "down")
    a.publish("r", [], {"gone": None})
    a.publish("r", [], {"new": state("new", 0.7)})
    a.publish("r", [], {"stay": state("stay", 0.6)})
    assert len(a.outbox) == 0  # only presence tells of these changes
    await redis_server.start()

    await settle(lambda: len(got_b.changed("r", Change.LEFT)) == 1, within=10)
    assert [e.sender for e in got_b.of("r", Kind.JOIN)] == ["gone", "stay"]
    assert sorted(got_b.changed("r"), key=lambda c: c.member) == [
        PresenceChange(Change.LEFT, "gone", {}),
        PresenceChange(Change.JOINED, "new", state("new", 0.7)),
        PresenceChange(Change.UPDATED, "stay", state("stay", 0.6)),
    ]
    assert b.stats.reconciled == 2  # one join, one leave
    assert got_a.events == got_a.changes == []


async def test_departures_while_redis_is_away_are_bounded(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a", dirty_limit=50)
    b, _ = await make("b")
    await a.join_room("r")
    event, now = join("stays", 0.5)
    a.publish("r", [event], {"stays": now})

    redis_server.stop()
    await settle(lambda: a.state == "down")
    for i in range(1000):  # members come and go in many rooms while Redis is away
        member, room = f"u{i}", f"room{i % 100}"
        event, now = join(member)
        a.publish(room, [event], {member: now})
        a.publish(room, [leave(member)], {member: None})
    assert a.outbox.pending_presence <= 100
    assert len(a.outbox) <= a.outbox.outbox_limit

    # Redis is back (empty here: plant entries of departed members, as a Redis that kept its
    # data would have them), the node reconnects and removes them with a scan.
    await redis_server.start()
    await settle(lambda: a.state == "up", within=5)
    redis = redis_server.client()
    try:
        ghost = Entry("a", a.instance, state("u1")).encode()
        await redis.hset(a.keys.presence("room1"), "u1", ghost)
        a.outbox.forget_departures()  # as while Redis was away: a scan is due
        await redis.client_kill_filter(_type="pubsub")  # a brief outage: a reconnects

        async def purged() -> bool:
            return not await redis.hexists(a.keys.presence("room1"), "u1")

        await wait_for(purged, 5, "departed member's entry removed")
        assert await redis.hexists(a.keys.presence("r"), "stays")
        await settle(lambda: b.state == "up", within=5)  # (its link was killed too)
        assert [r.member for r in await b.join_room("r")] == ["stays"]
    finally:
        await redis.aclose()


async def test_node_restarted_with_the_same_id(make: Callable[..., Any]) -> None:
    """The members of the earlier process leave as soon as the new one is up, not at the TTL."""
    old, _ = await make("a")
    b, got_b = await make("b")
    await old.join_room("r")
    await b.join_room("r")
    event, now = join("u1", 0.2)
    old.publish("r", [event], {"u1": now})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)
    # (b's sweeper starts node_ttl after b connected, giving other nodes time to come back.)
    await asyncio.sleep(b.quiet_until - asyncio.get_running_loop().time())
    await old.stop(farewell=False)  # crashed

    new, _ = await make("a")
    # The new process keeps the node's key alive, so no TTL ever runs out: the old members
    # leave because their entries name an instance that is no longer the key's.
    await settle(lambda: len(got_b.changed("r", Change.LEFT)) == 1, within=15)
    assert await new.join_room("r") == []


async def test_swept_node_comes_back_at_once(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """A node the others took for dead (it stalled past its TTL, or came back from an outage
    after them) re-writes its presence and says so: the others report its members again within
    a sweep, not at their next periodic reconcile."""
    a, _ = await make("a")
    b, got_b = await make("b", reconcile_interval=60)
    await a.join_room("r")
    await b.join_room("r")
    event, now = join("u1", 0.4)
    a.publish("r", [event], {"u1": now})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)
    await asyncio.sleep(b.quiet_until - asyncio.get_running_loop().time())

    # As if a had stalled past its TTL and b had swept its members: both at once (a
    # transaction), so that a's beat cannot find its key gone and re-write its presence
    # between the two, before the sweep's removal (the test then waited for nothing).
    redis = redis_server.client()
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(a.keys.node("a"))
            pipe.hdel(a.keys.presence("r"), "u1")
            await pipe.execute()

        async def rewritten() -> bool:
            return bool(await redis.hexists(a.keys.presence("r"), "u1"))

        # (upper bounds on events, far below b's 60 s reconcile, which would find it too)
        await wait_for(rewritten, 15, "a re-writing its presence")
    finally:
        await redis.aclose()

    def back() -> bool:
        told = [what for room, member, what in got_b.timeline if member == "u1"]
        # Either b noticed (left) and then saw u1 again (joined), or a was quicker.
        return told in (["join"], ["join", "left", "joined"])

    def known() -> list[str]:
        return [r.member for r in b.remote.records("r")]

    try:
        await settle(lambda: back() and known() == ["u1"], within=15)
    except TimeoutError:
        raise AssertionError(f"b was told {got_b.timeline}, knows {known()}") from None
    c, _ = await make("c")
    assert [(r.member, r.state) for r in await c.join_room("r")] == [("u1", now)]
