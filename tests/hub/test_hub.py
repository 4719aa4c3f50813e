"""The hub with fake members and a counting codec: coalescing, ordering, rooms, one encode per
flavour, the flush schedule, lagging members and room lifetime.

Fake members record the payloads they are handed (and when); their backlog is settable. The
codec counts its calls and encodes a batch as JSON ``{"flavour", "events"}``, a new bytes
object per call, so "the same bytes" can be checked with ``is``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from cursorshare.hub import (
    JSON,
    BackplaneState,
    Change,
    Event,
    Hub,
    InMemoryBackplane,
    Kind,
    PresenceChange,
    PresenceRecord,
    RemoteListener,
)

TICK = 0.02


class FakeMember:
    """A hub member that records what it is handed."""

    def __init__(self, member_id: str, flavour: str = "v2", backlog: int = 0) -> None:
        self.id = member_id
        self.flavour = flavour
        self.backlog = backlog
        self.payloads: list[bytes] = []
        self.delivered_at: list[float] = []
        self.overflows = 0
        self.overflowed_at: float | None = None

    def __repr__(self) -> str:
        return f"<FakeMember {self.id}>"

    def deliver(self, payload: bytes) -> None:
        self.payloads.append(payload)
        self.delivered_at.append(asyncio.get_running_loop().time())

    def overflow(self) -> None:
        self.overflows += 1
        self.overflowed_at = asyncio.get_running_loop().time()

    def batches(self) -> list[list[tuple[Any, ...]]]:
        """Each payload as a list of (kind, sender, x) — x is None for joins and leaves."""
        return [
            [(kind, sender, data.get("x")) for kind, sender, data in json.loads(p)["events"]]
            for p in self.payloads
        ]

    def events(self) -> list[tuple[Any, ...]]:
        return [event for batch in self.batches() for event in batch]

    def reset(self) -> None:
        self.payloads.clear()
        self.delivered_at.clear()


class CountingCodec:
    """Counts encodes; returns None (nothing to see) for the flavour ``mute``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Event]]] = []

    def encode(self, flavour: str, events: Sequence[Event]) -> bytes | None:
        self.calls.append((flavour, list(events)))
        if flavour == "mute" or not events:
            return None
        return json.dumps(
            {"flavour": flavour, "events": [[e.kind.value, e.sender, e.data] for e in events]}
        ).encode()


class RecordingBackplane(InMemoryBackplane):
    def __init__(self, present: list[PresenceRecord] | None = None) -> None:
        self.listener: RemoteListener | None = None
        self.present = present or []
        self.joined: list[str] = []
        self.left: list[str] = []
        self.published: list[tuple[str, list[Event], dict[str, JSON | None]]] = []

    async def start(self, listener: RemoteListener) -> None:
        self.listener = listener

    async def join_room(self, room: str) -> list[PresenceRecord]:
        self.joined.append(room)
        return list(self.present)

    async def leave_room(self, room: str) -> None:
        self.left.append(room)

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        self.published.append((room, list(events), dict(presence)))


MakeHub = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub() -> AsyncIterator[MakeHub]:
    hubs: list[Hub] = []

    async def go(**options: Any) -> Hub:
        codec = options.pop("codec", None) or CountingCodec()
        options.setdefault("tick", TICK)
        hub = Hub(codec, **options)
        await hub.start()
        hubs.append(hub)
        return hub

    yield go
    for hub in hubs:
        await hub.stop()


# -- helpers ----------------------------------------------------------------------------------


async def settle(hub: Hub, ticks: int = 4) -> None:
    """Let pending flushes happen."""
    await asyncio.sleep(hub.tick * ticks + 0.01)


async def join(hub: Hub, room: str, member: FakeMember) -> list[JSON]:
    """Join with the state ``{"id", "x": None}``; returns the states of everyone there."""
    present = await hub.join(
        room,
        member,
        {"type": "join", "id": member.id},
        {"id": member.id, "x": None},
    )
    return [record.state for record in present]


def move(hub: Hub, room: str, member: FakeMember, x: float) -> None:
    """An update of the member's state to ``{"id", "x"}``."""
    hub.update(
        room, member, {"type": "move", "sender": member.id, "x": x}, {"id": member.id, "x": x}
    )


def leave(hub: Hub, room: str, member: FakeMember) -> None:
    hub.leave(room, member, {"type": "leave", "id": member.id})


async def room_with(hub: Hub, room: str, *members: FakeMember) -> None:
    """Join ``members`` to ``room``, let the joins go out, and forget them."""
    for member in members:
        await join(hub, room, member)
    await settle(hub, ticks=2)
    for member in members:
        member.reset()
    codec = hub.codec
    assert isinstance(codec, CountingCodec)
    codec.calls.clear()


async def wait_until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- coalescing and ordering ----------------------------------------------------------------


async def test_moves_within_one_tick_collapse_to_the_latest_per_sender(make_hub: MakeHub) -> None:
    hub = await make_hub()
    a, b, watcher = FakeMember("a"), FakeMember("b"), FakeMember("w")
    await room_with(hub, "r", a, b, watcher)

    for x in range(1, 6):
        move(hub, "r", a, x)
        if x <= 3:
            move(hub, "r", b, x * 10)
    await settle(hub)

    # One payload each; a's latest move came after b's, and takes its place in time.
    for member in (a, b, watcher):
        assert member.batches() == [[("move", "b", 30), ("move", "a", 5)]]
    assert hub.stats.coalesced == 6


async def test_join_and_leave_are_never_dropped_or_reordered_against_moves(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    a, watcher = FakeMember("a"), FakeMember("w")
    await room_with(hub, "r", a, watcher)

    move(hub, "r", a, 1)
    leave(hub, "r", a)
    await join(hub, "r", a)
    move(hub, "r", a, 2)
    move(hub, "r", a, 3)
    await settle(hub)

    assert watcher.batches() == [
        [("move", "a", 1), ("leave", "a", None), ("join", "a", None), ("move", "a", 3)]
    ]


async def test_rooms_are_isolated(make_hub: MakeHub) -> None:
    hub = await make_hub()
    a, in_one = FakeMember("a"), FakeMember("w1")
    b, in_two = FakeMember("b"), FakeMember("w2")
    await room_with(hub, "one", a, in_one)
    await room_with(hub, "two", b, in_two)

    move(hub, "one", a, 1)
    move(hub, "two", b, 2)
    leave(hub, "one", a)
    move(hub, "two", a, 3)  # a is not in room two: ignored
    await settle(hub)

    assert in_one.events() == [("move", "a", 1), ("leave", "a", None)]
    assert in_two.events() == [("move", "b", 2)]
    assert b.events() == [("move", "b", 2)]


async def test_newcomer_gets_everyone_present_with_their_latest_state(make_hub: MakeHub) -> None:
    hub = await make_hub()
    a, b = FakeMember("a"), FakeMember("b")
    assert await join(hub, "r", a) == []
    move(hub, "r", a, 0.25)
    move(hub, "r", a, 0.5)
    assert await join(hub, "r", b) == [{"id": "a", "x": 0.5}]
    await settle(hub)
    leave(hub, "r", a)
    assert await join(hub, "r", FakeMember("c")) == [{"id": "b", "x": None}]


# -- encode once, fan out the same bytes ------------------------------------------------------


async def test_one_encode_per_room_per_flavour_and_the_same_bytes_for_every_member(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    codec = hub.codec
    assert isinstance(codec, CountingCodec)
    v2_a, v2_b, v2_c = FakeMember("p"), FakeMember("q"), FakeMember("r")
    tut_a, tut_b = FakeMember("s", "tutorial"), FakeMember("t", "tutorial")
    other = FakeMember("u")
    await room_with(hub, "one", v2_a, v2_b, v2_c, tut_a, tut_b)
    await room_with(hub, "two", other)
    encodes_before = hub.stats.encodes

    for x in range(10):
        move(hub, "one", v2_a, x)
        move(hub, "one", tut_a, x)
        move(hub, "two", other, x)
    await settle(hub)

    assert sorted(flavour for flavour, _ in codec.calls) == ["tutorial", "v2", "v2"]
    assert hub.stats.encodes - encodes_before == 3
    for group in ((v2_a, v2_b, v2_c), (tut_a, tut_b)):
        assert all(len(m.payloads) == 1 for m in group)
        first = group[0].payloads[0]
        assert all(m.payloads[0] is first for m in group)
    assert json.loads(v2_a.payloads[0])["flavour"] == "v2"
    assert json.loads(tut_a.payloads[0])["flavour"] == "tutorial"
    assert other.batches() == [[("move", "u", 9)]]


async def test_a_flavour_with_nothing_to_see_is_handed_nothing(make_hub: MakeHub) -> None:
    hub = await make_hub()
    a, muted = FakeMember("a"), FakeMember("m", "mute")
    await room_with(hub, "r", a, muted)
    move(hub, "r", a, 1)
    await settle(hub)
    assert a.events() == [("move", "a", 1)]
    assert muted.payloads == []


# -- the flush schedule -------------------------------------------------------------------------


async def test_an_event_after_a_quiet_spell_goes_out_at_once(make_hub: MakeHub) -> None:
    tick = 0.3
    hub = await make_hub(tick=tick)
    a, watcher = FakeMember("a"), FakeMember("w")
    await join(hub, "r", watcher)
    await asyncio.sleep(0.02)  # far less than a tick
    assert watcher.events() == [("join", "w", None)]

    await asyncio.sleep(tick + 0.05)  # a quiet spell
    await join(hub, "r", a)
    await asyncio.sleep(0.02)
    assert watcher.events()[-1] == ("join", "a", None)

    await asyncio.sleep(tick + 0.05)
    move(hub, "r", a, 1)
    await asyncio.sleep(0.02)
    assert watcher.events()[-1] == ("move", "a", 1)


async def test_at_most_one_flush_per_tick(make_hub: MakeHub) -> None:
    tick = 0.3
    hub = await make_hub(tick=tick)
    a, watcher = FakeMember("a"), FakeMember("w")
    await room_with(hub, "r", a, watcher)
    await asyncio.sleep(tick)

    move(hub, "r", a, 1)  # after a quiet spell: out at once
    await asyncio.sleep(0.02)
    assert watcher.batches() == [[("move", "a", 1)]]
    for x in range(2, 6):  # within the same tick: held back until it ends, then one payload
        move(hub, "r", a, x)
        await asyncio.sleep(0.005)
    assert len(watcher.payloads) == 1
    await asyncio.sleep(tick)
    assert watcher.batches() == [[("move", "a", 1)], [("move", "a", 5)]]
    assert watcher.delivered_at[1] - watcher.delivered_at[0] >= tick - 0.001


async def test_flushes_are_a_tick_apart_under_a_steady_stream(make_hub: MakeHub) -> None:
    tick = 0.05
    hub = await make_hub(tick=tick)
    a, watcher = FakeMember("a"), FakeMember("w")
    await room_with(hub, "r", a, watcher)

    for x in range(40):
        move(hub, "r", a, x)
        await asyncio.sleep(0.005)
    await settle(hub)

    times = watcher.delivered_at
    assert len(times) >= 2
    assert all(later - earlier >= tick - 0.001 for earlier, later in itertools.pairwise(times))
    # Every payload holds one move (the latest of its tick), the last one the final position.
    assert all(len(batch) == 1 for batch in watcher.batches())
    assert watcher.events()[-1] == ("move", "a", 39)
    xs = [x for _, _, x in watcher.events()]
    assert xs == sorted(xs)


# -- members that fall behind -----------------------------------------------------------------


async def test_a_lagging_member_gets_one_catch_up_payload_with_the_latest_positions(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(lag_bytes=100)
    a, b, slow = FakeMember("a"), FakeMember("b"), FakeMember("slow")
    await room_with(hub, "r", a, b, slow)
    slow.backlog = 1000

    move(hub, "r", a, 1)
    move(hub, "r", b, 1)
    await settle(hub)
    move(hub, "r", a, 2)
    c = FakeMember("c")
    await join(hub, "r", c)
    await settle(hub)
    move(hub, "r", a, 3)
    move(hub, "r", b, 2)
    await settle(hub)

    assert slow.payloads == []
    assert len(a.payloads) == 3  # the others kept getting every tick
    assert slow.overflows == 0

    slow.backlog = 0
    await settle(hub)
    assert len(slow.payloads) == 1
    catch_up = slow.batches()[0]
    assert sorted(e for e in catch_up if e[0] == "move") == [("move", "a", 3), ("move", "b", 2)]
    assert ("join", "c", None) in catch_up

    # Caught up: back on the shared payloads.
    move(hub, "r", a, 4)
    await settle(hub)
    assert len(slow.payloads) == 2
    assert slow.payloads[1] is a.payloads[-1]


async def test_a_lagging_member_is_overflowed_after_max_lag_seconds(make_hub: MakeHub) -> None:
    max_lag = 0.4
    hub = await make_hub(lag_bytes=100, max_lag_seconds=max_lag)
    a, slow = FakeMember("a"), FakeMember("slow")
    await room_with(hub, "r", a, slow)
    slow.backlog = 1000
    loop = asyncio.get_running_loop()

    started = loop.time()
    move(hub, "r", a, 1)
    await settle(hub, ticks=2)
    assert slow.overflows == 0
    await wait_until(lambda: slow.overflows > 0)
    assert slow.overflowed_at is not None
    assert slow.overflowed_at - started > max_lag
    await settle(hub)
    assert slow.overflows == 1
    assert slow.payloads == []
    assert hub.stats.overflows == 1


async def test_a_lagging_member_is_overflowed_past_max_lag_events(make_hub: MakeHub) -> None:
    hub = await make_hub(lag_bytes=100, max_lag_events=3, max_lag_seconds=30)
    a, slow = FakeMember("a"), FakeMember("slow")
    await room_with(hub, "r", a, slow)
    slow.backlog = 1000

    move(hub, "r", a, 0)
    await settle(hub)
    # One sender's moves coalesce in the lagging batch: it stays one event.
    for x in range(1, 20):
        move(hub, "r", a, x)
        await asyncio.sleep(TICK / 2)
    await settle(hub)
    assert slow.overflows == 0

    for name in ("b", "c", "d", "e"):
        await join(hub, "r", FakeMember(name))
    await wait_until(lambda: slow.overflows > 0, within=2.0)
    assert slow.overflows == 1
    assert slow.payloads == []


async def test_a_lagging_member_that_leaves_is_forgotten(make_hub: MakeHub) -> None:
    max_lag = 0.3
    hub = await make_hub(lag_bytes=100, max_lag_seconds=max_lag)
    a, slow = FakeMember("a"), FakeMember("slow")
    await room_with(hub, "r", a, slow)
    slow.backlog = 1000
    move(hub, "r", a, 1)
    await settle(hub, ticks=2)
    assert slow.payloads == []
    assert slow.overflows == 0  # lagging, well within max_lag_seconds

    leave(hub, "r", slow)
    slow.backlog = 0
    await asyncio.sleep(max_lag + 0.2)  # past max_lag_seconds, many ticks
    assert slow.payloads == []  # no catch-up
    assert slow.overflows == 0  # and no overflow
    move(hub, "r", a, 2)
    await settle(hub)
    assert slow.payloads == []
    assert a.events()[-2:] == [("leave", "slow", None), ("move", "a", 2)]


# -- room lifetime and the backplane ----------------------------------------------------------


async def test_the_room_is_deleted_when_its_last_member_leaves(make_hub: MakeHub) -> None:
    backplane = RecordingBackplane()
    hub = await make_hub(backplane=backplane)
    a, b = FakeMember("a"), FakeMember("b")
    await room_with(hub, "r", a, b)
    assert backplane.joined == ["r"]

    leave(hub, "r", a)
    await settle(hub)
    assert "r" in hub.rooms
    leave(hub, "r", b)
    await settle(hub)
    assert "r" not in hub.rooms
    assert backplane.left == ["r"]

    # A new member starts a fresh room.
    c = FakeMember("c")
    assert await join(hub, "r", c) == []
    assert backplane.joined == ["r", "r"]
    await settle(hub)
    assert c.events() == [("join", "c", None)]


async def test_local_batches_are_published_and_remote_events_delivered(make_hub: MakeHub) -> None:
    backplane = RecordingBackplane()
    hub = await make_hub(backplane=backplane)
    a, watcher = FakeMember("a"), FakeMember("w")
    await room_with(hub, "r", a, watcher)
    backplane.published.clear()

    move(hub, "r", a, 1)
    move(hub, "r", a, 2)
    await settle(hub)
    assert len(backplane.published) == 1
    room, events, presence = backplane.published[0]
    assert room == "r"
    assert [(e.kind, e.sender, e.data["x"]) for e in events] == [(Kind.MOVE, "a", 2)]
    assert presence == {"a": {"id": "a", "x": 2}}

    assert backplane.listener is not None
    remote = Event(
        Kind.MOVE, "far", {"type": "move", "sender": "far", "x": 7}, {"id": "far", "x": 7}, False
    )
    backplane.listener.remote_events("r", [remote])
    await settle(hub)
    assert watcher.events()[-1] == ("move", "far", 7)
    assert len(backplane.published) == 1  # nothing of another node's is published again
    assert {"id": "far", "x": 7} in await join(hub, "r", FakeMember("late"))


# -- presence -----------------------------------------------------------------------------------


class TaggingTranslator:
    """Tells receivers of a presence change as one event whose data names the change."""

    def events(self, change: PresenceChange) -> list[Event]:
        kind = {Change.JOINED: Kind.JOIN, Change.UPDATED: Kind.MOVE, Change.LEFT: Kind.LEAVE}
        data = {"change": change.kind.value, "x": change.state.get("x")}
        return [Event(kind[change.kind], change.member, data, change.state)]

    def orphan(self, state: JSON) -> JSON:
        return state


async def test_presence_lists_members_of_every_node_with_their_whole_state(
    make_hub: MakeHub,
) -> None:
    far = PresenceRecord("far", {"id": "far", "x": 3})
    hub = await make_hub(backplane=RecordingBackplane([far]))
    a = FakeMember("a")
    assert await join(hub, "r", a) == [{"id": "far", "x": 3}]
    move(hub, "r", a, 1)
    # A state is replaced whole, never merged: what the app passes is what the room keeps.
    hub.update("r", a, {"type": "move", "sender": "a", "x": 2}, {"x": 2})
    assert hub.presence("r") == [far, PresenceRecord("a", {"x": 2})]
    assert hub.presence("elsewhere") == []


async def test_inferred_presence_changes_are_told_through_the_translator_and_never_published(
    make_hub: MakeHub,
) -> None:
    backplane = RecordingBackplane()
    hub = await make_hub(backplane=backplane, translator=TaggingTranslator())
    watcher = FakeMember("w")
    await room_with(hub, "r", watcher)
    backplane.published.clear()
    assert backplane.listener is not None

    backplane.listener.remote_presence(
        "r",
        [
            PresenceChange(Change.JOINED, "far", {"id": "far", "x": 5}),
            PresenceChange(Change.UPDATED, "old", {"id": "old", "x": 6}),
        ],
    )
    await settle(hub)
    assert watcher.events() == [("join", "far", 5), ("move", "old", 6)]
    assert await join(hub, "r", FakeMember("late")) == [
        {"id": "w", "x": None},
        {"id": "far", "x": 5},
        {"id": "old", "x": 6},
    ]
    await settle(hub)
    watcher.reset()
    backplane.published.clear()

    backplane.listener.remote_presence("r", [PresenceChange(Change.LEFT, "far", {})])
    backplane.listener.remote_presence("nowhere", [PresenceChange(Change.LEFT, "x", {})])
    await settle(hub)
    assert watcher.events() == [("leave", "far", None)]
    assert [r.member for r in hub.presence("r")] == ["w", "old", "late"]
    assert backplane.published == []  # another node's members are never published from here


async def test_without_a_translator_receivers_are_told_the_record(make_hub: MakeHub) -> None:
    backplane = RecordingBackplane()
    hub = await make_hub(backplane=backplane)
    watcher = FakeMember("w")
    await room_with(hub, "r", watcher)
    assert backplane.listener is not None
    backplane.listener.remote_presence(
        "r", [PresenceChange(Change.UPDATED, "far", {"id": "far", "x": 4})]
    )
    await settle(hub)
    assert watcher.events() == [("move", "far", 4)]


def test_backplane_states_say_whether_every_node_is_seen() -> None:
    assert [s.healthy for s in BackplaneState] == [True, True, False]
    assert InMemoryBackplane().state is BackplaneState.LOCAL
    assert BackplaneState.UP == "up"  # what /healthz shows
