"""RedisBackplane instances in one process, on a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from cursorshare.cursors.messages import TUTORIAL, V2, CursorCodec
from cursorshare.hub import Event, Kind
from cursorshare.hub.redis import DELETE_IF_CONTAINS, RedisBackplane, arrival_events
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster


class Recorder:
    """Stands for a hub: records what its backplane delivers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    def __call__(self, room: str, events: list[Event]) -> None:
        self.events += [(room, event) for event in events]

    def of(self, room: str, kind: Kind | None = None) -> list[Event]:
        return [e for r, e in self.events if r == room and (kind is None or e.kind is kind)]


@pytest.fixture
async def make(
    redis_server: RedisServer,
) -> AsyncIterator[Callable[..., Any]]:
    started: list[RedisBackplane] = []

    async def make(node_id: str, **options: Any) -> tuple[RedisBackplane, Recorder]:
        backplane = RedisBackplane(redis_server.url, node_id=node_id, **options)
        recorder = Recorder()
        await backplane.start(recorder)
        assert backplane.state == "up"
        started.append(backplane)
        return backplane, recorder

    yield make
    for backplane in started:
        await backplane.stop()


def join(user: str, x: float | None = None) -> tuple[Event, dict[str, Any]]:
    state = {"id": user, "color": "#000", "name": user, "x": x, "y": x, "px": False}
    data = {"type": "join", "id": user, "color": "#000", "name": user}
    return Event(Kind.JOIN, user, data, state), state


def move(user: str, x: float) -> tuple[Event, dict[str, Any]]:
    data = {"type": "move", "sender": user, "color": "#000", "name": user, "x": x, "y": x}
    state = {"x": x, "y": x, "px": False, "name": user}
    return Event(Kind.MOVE, user, data, state), state


async def settle(check: Callable[[], bool], within: float = 3.0) -> None:
    async def ready() -> bool:
        return check()

    await wait_for(ready, within, "condition")


async def test_channel_per_room_and_own_messages_ignored(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, got_a = await make("a")
    b, got_b = await make("b")
    c, got_c = await make("c")
    assert await a.join_room("x") == []
    assert await c.join_room("x") == []
    assert await b.join_room("y") == []

    redis = redis_server.client()
    try:
        counts = dict(await redis.pubsub_numsub(a.channel("x"), a.channel("y")))
        assert counts == {a.channel("x").encode(): 2, a.channel("y").encode(): 1}

        # A third subscriber of room x sees exactly one message per publish.
        spy = redis.pubsub()
        await spy.subscribe(a.channel("x"))
        assert (await spy.get_message(timeout=2))["type"] == "subscribe"

        event, state = join("u1")
        a.publish("x", [event], {"u1": state})
        moved, moved_state = move("u1", 0.5)
        a.publish("x", [moved], {"u1": {**state, **moved_state}})

        await settle(lambda: len(got_c.of("x")) == 2)
        assert [e.kind for e in got_c.of("x")] == [Kind.JOIN, Kind.MOVE]
        assert got_c.of("x")[1].data["x"] == 0.5
        assert all(not e.local for e in got_c.of("x"))
        wire = [await spy.get_message(timeout=2) for _ in range(2)]
        assert [orjson.loads(m["data"])["node"] for m in wire] == ["a", "a"]
        assert await spy.get_message(timeout=0.3) is None  # one message per publish call

        # Nothing of room x reaches b (not subscribed), nothing reaches a (its own).
        await asyncio.sleep(0.3)
        assert got_b.events == []
        assert got_a.events == []

        # The presence hash carries the record and its node.
        raw = await redis.hget(a.presence_key("x"), "u1")
        assert raw is not None
        record = orjson.loads(raw)
        assert record["node"] == "a" and record["x"] == 0.5

        # Leaving the room unsubscribes.
        await c.leave_room("x")
        counts = dict(await redis.pubsub_numsub(a.channel("x")))
        assert counts[a.channel("x").encode()] == 2  # a and the spy
        await spy.aclose()  # type: ignore[no-untyped-call]
    finally:
        await redis.aclose()


async def test_presence_snapshot_across_nodes(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    b, _ = await make("b")
    await a.join_room("r")
    for user, x in (("u1", 0.1), ("u2", None)):
        event, state = join(user, x)
        a.publish("r", [event], {user: state})
    event, state = join("u3", 0.3)
    a.publish("r", [event], {"u3": state})
    a.publish("r", [Event(Kind.LEAVE, "u3", {"type": "leave", "id": "u3"}, {})], {"u3": None})
    redis = redis_server.client()

    async def written(user: str, present: bool) -> bool:
        return bool(await redis.hexists(a.presence_key("r"), user)) == present

    await wait_for(lambda: written("u3", False), 3, "u3 left")

    users = {u["id"]: u for u in await b.join_room("r")}
    assert set(users) == {"u1", "u2"}
    assert users["u1"]["x"] == 0.1 and users["u2"]["x"] is None
    assert "node" not in users["u1"]

    # b's own users are not in its snapshot, but are in a's next one.
    event, state = join("v1", 0.9)
    b.publish("r", [event], {"v1": state})
    await wait_for(lambda: written("v1", True), 3, "v1 written")
    await redis.aclose()
    c, _ = await make("c")
    assert {u["id"] for u in await c.join_room("r")} == {"u1", "u2", "v1"}
    assert {u["id"] for u in await b.join_room("r2")} == set()


async def test_dead_node_users_leave(make: Callable[..., Any], redis_server: RedisServer) -> None:
    a, _ = await make("a")
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    event, state = join("u1", 0.2)
    a.publish("r", [event], {"u1": state})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)

    # Kill a without a clean stop: its link just goes away, its keys stay until the TTL.
    assert a._supervisor is not None
    a._supervisor.cancel()
    a._stopping = True
    start = time.monotonic()
    await settle(lambda: len(got_b.of("r", Kind.LEAVE)) == 1, within=10)
    elapsed = time.monotonic() - start
    leave = got_b.of("r", Kind.LEAVE)[0]
    assert leave.sender == "u1" and leave.data == {"type": "leave", "id": "u1"}
    assert not leave.local
    assert elapsed < 6, elapsed
    # It is gone from the hash too: a newcomer does not see it.
    redis = redis_server.client()
    try:

        async def removed() -> bool:
            return not await redis.hexists(b.presence_key("r"), "u1")

        await wait_for(removed, 2, "u1 removed from the hash")
    finally:
        await redis.aclose()
    c, _ = await make("c")
    assert await c.join_room("r") == []


async def test_stale_entries_are_removed_only_if_unchanged(redis_server: RedisServer) -> None:
    """A node removes an entry it found stale only if nobody re-wrote it since."""
    redis = redis_server.client()
    try:
        old = orjson.dumps({"id": "u", "node": "x", "inst": "old"})
        new = orjson.dumps({"id": "u", "node": "x", "inst": "new"})
        await redis.hset("h", mapping={"u": new, "v": old})
        removed = await redis.eval(DELETE_IF_CONTAINS, 1, "h", "u", b'"inst":"old"', "v", old)
        assert removed == 1
        assert await redis.hgetall("h") == {b"u": new}
    finally:
        await redis.aclose()


async def test_clean_stop_removes_presence(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    await a.join_room("r")
    event, state = join("u1", 0.2)
    a.publish("r", [event], {"u1": state})
    await a.stop()
    redis = redis_server.client()
    try:
        assert await redis.hgetall(a.presence_key("r")) == {}
        assert await redis.exists(a.node_key("a")) == 0
    finally:
        await redis.aclose()


async def test_outbox_is_bounded_while_redis_is_away(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a", outbox_limit=100)
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    event, state = join("u1", 0.0)
    a.publish("r", [event], {"u1": state})
    await settle(lambda: len(got_b.of("r")) == 1)

    redis_server.stop()
    await settle(lambda: a.state == "down" and b.state == "down")
    start = time.perf_counter()
    for i in range(5000):
        moved, moved_state = move("u1", i / 5000)
        a.publish("r", [moved], {"u1": {**state, **moved_state}})
    assert time.perf_counter() - start < 1.0  # publish never waits
    assert len(a._outbox) == 100
    assert a.stats.dropped >= 4900

    await redis_server.start()
    await settle(lambda: a.state == "up" and b.state == "up", within=5)
    # The newest batches survived; the last position arrives.
    await settle(lambda: any(e.data.get("x") == 4999 / 5000 for e in got_b.of("r", Kind.MOVE)))
    # And presence was re-written (Redis lost everything).
    c, _ = await make("c")
    users = await c.join_room("r")
    assert [u["id"] for u in users] == ["u1"]
    assert users[0]["x"] == 4999 / 5000


async def test_reconcile_after_outage(make: Callable[..., Any], redis_server: RedisServer) -> None:
    """What happened while Redis was away (and its batches were lost) is reported once it is
    back: joins, leaves, and the positions of users who moved meanwhile."""
    a, got_a = await make("a")
    b, got_b = await make("b")
    await a.join_room("r")
    await b.join_room("r")
    for user in ("gone", "stay"):
        event, state = join(user, 0.1)
        a.publish("r", [event], {user: state})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 2)

    redis_server.stop()
    await settle(lambda: a.state == "down" and b.state == "down")
    a.publish("r", [], {"gone": None})
    event, state = join("new", 0.7)
    a.publish("r", [], {"new": state})
    _, stay = join("stay", 0.6)
    a.publish("r", [], {"stay": stay})
    a._outbox.clear()  # as if the outage had lasted long enough to drop every batch
    await redis_server.start()

    await settle(lambda: len(got_b.of("r", Kind.LEAVE)) == 1, within=10)
    assert got_b.of("r", Kind.LEAVE)[0].sender == "gone"
    joins = got_b.of("r", Kind.JOIN)
    assert [e.sender for e in joins] == ["gone", "stay", "new"]
    assert joins[2].state["x"] == 0.7
    assert joins[2].data == {"type": "join", "id": "new", "color": "#000", "name": "new"}
    moves = {(e.sender, e.data["x"]) for e in got_b.of("r", Kind.MOVE)}
    assert moves == {("new", 0.7), ("stay", 0.6)}
    assert got_a.events == []


async def test_departures_while_redis_is_away_are_bounded(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a", dirty_limit=50)
    b, _ = await make("b")
    await a.join_room("r")
    event, state = join("stays", 0.5)
    a.publish("r", [event], {"stays": state})

    redis_server.stop()
    await settle(lambda: a.state == "down")
    for i in range(1000):  # users come and go in many rooms while Redis is away
        user, room = f"u{i}", f"room{i % 100}"
        event, state = join(user)
        a.publish(room, [event], {user: state})
        a.publish(room, [Event(Kind.LEAVE, user, {"type": "leave", "id": user}, {})], {user: None})
    assert a._dirty_count <= 100
    assert len(a._outbox) <= a.outbox_limit

    # Redis is back (empty here: plant entries of departed users, as a Redis that kept its
    # data would have them), the node reconnects and removes them with a scan.
    await redis_server.start()
    await settle(lambda: a.state == "up", within=5)
    redis = redis_server.client()
    try:
        ghost = orjson.dumps({"id": "u1", "node": "a", "inst": a.instance})
        await redis.hset(a.presence_key("room1"), "u1", ghost)
        a._purge_own = True
        await redis.client_kill_filter(_type="pubsub")  # a brief outage: a reconnects

        async def purged() -> bool:
            return not await redis.hexists(a.presence_key("room1"), "u1")

        await wait_for(purged, 5, "departed user's entry removed")
        assert await redis.hexists(a.presence_key("r"), "stays")
        await settle(lambda: b.state == "up", within=5)  # (its link was killed too)
        assert [u["id"] for u in await b.join_room("r")] == ["stays"]
    finally:
        await redis.aclose()


async def test_node_restarted_with_the_same_id(make: Callable[..., Any]) -> None:
    """The users of the earlier process leave as soon as the new one is up, not at the TTL."""
    old, _ = await make("a")
    b, got_b = await make("b")
    await old.join_room("r")
    await b.join_room("r")
    event, state = join("u1", 0.2)
    old.publish("r", [event], {"u1": state})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)
    # (b's sweeper starts node_ttl after b connected, giving other nodes time to come back.)
    await asyncio.sleep(b._quiet_until - asyncio.get_running_loop().time())
    assert old._supervisor is not None
    old._supervisor.cancel()  # crashed
    old._stopping = True

    new, _ = await make("a")
    start = time.monotonic()
    await settle(lambda: len(got_b.of("r", Kind.LEAVE)) == 1, within=5)
    assert time.monotonic() - start < 2.5  # one sweep, well before the 3 s TTL
    assert await new.join_room("r") == []


def test_missed_users_are_told_in_each_flavour_shape() -> None:
    """The joins and moves a reconcile makes up encode like the app's own, for both flavours."""
    codec = CursorCodec()

    def decoded(flavour: str, events: list[Event]) -> list[dict[str, Any]]:
        payload = codec.encode(flavour, events)
        assert payload is not None and payload.startswith(b"a")
        return [orjson.loads(m) for m in orjson.loads(payload[1:])]

    v2 = {"id": "v", "color": "#111", "name": "Ada", "x": 0.25, "y": 0.5, "px": False}
    assert decoded(V2, arrival_events("v", v2)) == [
        {"type": "join", "id": "v", "color": "#111", "name": "Ada"},
        {"type": "move", "sender": "v", "color": "#111", "name": "Ada", "x": 0.25, "y": 0.5},
    ]
    assert decoded(TUTORIAL, arrival_events("v", v2)) == [
        {"x": 250, "y": 500, "sender": "v", "color": "#111"}
    ]
    px = {"id": "t", "color": "#222", "name": "", "x": 640, "y": 200, "px": True}
    assert decoded(V2, arrival_events("t", px))[1] == {
        "type": "move", "sender": "t", "color": "#222", "x": 640, "y": 200, "px": True,
    }  # fmt: skip
    assert decoded(TUTORIAL, arrival_events("t", px)) == [
        {"x": 640, "y": 200, "sender": "t", "color": "#222"}
    ]
    # Not moved yet: a join only.
    fresh = {**v2, "x": None, "y": None}
    assert [e.kind for e in arrival_events("v", fresh)] == [Kind.JOIN]
    assert codec.encode(TUTORIAL, arrival_events("v", fresh)) is None


async def test_swept_node_comes_back_at_once(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """A node the others took for dead (it stalled past its TTL, or came back from an outage
    after them) re-writes its presence and says so: the others report its users again within
    a sweep, not at their next periodic reconcile."""
    a, _ = await make("a")
    b, got_b = await make("b", reconcile_interval=60)
    await a.join_room("r")
    await b.join_room("r")
    event, state = join("u1", 0.4)
    a.publish("r", [event], {"u1": state})
    await settle(lambda: len(got_b.of("r", Kind.JOIN)) == 1)
    await asyncio.sleep(b._quiet_until - asyncio.get_running_loop().time())

    # As if a had stalled past its TTL and b had swept its users.
    redis = redis_server.client()
    try:
        await redis.delete(a.node_key("a"))
        await redis.hdel(a.presence_key("r"), "u1")
        start = time.monotonic()

        async def rewritten() -> bool:
            return bool(await redis.hexists(a.presence_key("r"), "u1"))

        await wait_for(rewritten, 5, "a re-writing its presence")
    finally:
        await redis.aclose()

    def back() -> bool:
        kinds = [e.kind for e in got_b.of("r") if e.sender == "u1"]
        # Either b noticed (leave) and then saw u1 again (join, move), or a was quicker.
        return kinds in ([Kind.JOIN], [Kind.JOIN, Kind.LEAVE, Kind.JOIN, Kind.MOVE])

    try:
        await settle(lambda: back() and list(b._views["r"].remote) == ["u1"], within=5)
    except TimeoutError:
        told = [(e.kind.value, e.sender) for e in got_b.of("r")]
        raise AssertionError(f"b was told {told}, knows {list(b._views['r'].remote)}") from None
    assert time.monotonic() - start < 4
    c, _ = await make("c")
    users = await c.join_room("r")
    assert [(u["id"], u["x"]) for u in users] == [("u1", 0.4)]
