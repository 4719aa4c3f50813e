"""The hub's generic parts for presence and resume (issue #13): notices that are never
coalesced away, a member that another node now speaks for (it resumed there), the in-process
record store with a time to live, and the least-used slot of a room."""

from __future__ import annotations

import asyncio

import pytest

from cursorshare.hub import (
    JSON,
    Change,
    Event,
    Hub,
    Kind,
    MemoryTtlStore,
    PresenceChange,
    PresenceRecord,
    RecordTranslator,
    least_used,
)
from tests.hub.test_hub import (
    CountingCodec,
    FakeMember,
    RecordingBackplane,
    join,
    move,
)


async def flushed(hub: Hub) -> None:
    """Flush every pending room now (the hub's timer would do it within a tick)."""
    hub.flush()
    await asyncio.sleep(0)


@pytest.fixture
async def hub_and_backplane() -> tuple[Hub, RecordingBackplane]:
    backplane = RecordingBackplane()
    hub = Hub(CountingCodec(), backplane=backplane, tick=60.0)  # flushed by hand only
    await hub.start()
    return hub, backplane


async def test_a_notice_is_never_coalesced_away_by_a_later_move(
    hub_and_backplane: tuple[Hub, RecordingBackplane],
) -> None:
    hub, _ = hub_and_backplane
    a, watcher = FakeMember("a"), FakeMember("w")
    for member in (a, watcher):
        await join(hub, "r", member)
    await flushed(hub)
    watcher.reset()

    move(hub, "r", a, 1)
    hub.notify("r", a, {"status": "away"}, {"id": "a", "x": 1, "status": "away"})
    move(hub, "r", a, 2)
    move(hub, "r", a, 3)
    await flushed(hub)
    # The first move is sealed by the notice; the later ones collapse to the latest.
    assert watcher.events() == [("move", "a", 1), ("notice", "a", None), ("move", "a", 3)]
    assert [r.state for r in hub.presence("r") if r.member == "a"] == [{"id": "a", "x": 3}]


async def test_a_member_another_node_now_speaks_for_ends_here_silently(
    hub_and_backplane: tuple[Hub, RecordingBackplane],
) -> None:
    hub, backplane = hub_and_backplane
    moved, watcher = FakeMember("m"), FakeMember("w")
    for member in (moved, watcher):
        await join(hub, "r", member)
    await flushed(hub)
    watcher.reset()
    backplane.published.clear()

    assert backplane.listener is not None
    state = {"id": "m", "x": None, "status": "active"}
    backplane.listener.remote_events("r", [Event(Kind.JOIN, "m", {"back": "m"}, state, False)])
    await flushed(hub)
    # Receivers are told the other node's news, and nothing else: no leave from here.
    assert watcher.events() == [("join", "m", None)]
    assert "m" not in hub.rooms["r"].members
    assert [r.state for r in hub.presence("r") if r.member == "m"] == [state]
    # This node forgets its own record of it, and publishes no event of it.
    assert backplane.published == [("r", [], {"m": None})]
    # Its stale departure (the app's timer on this node) changes nothing.
    hub.leave("r", moved, {"type": "leave", "id": "m"})
    await flushed(hub)
    assert watcher.events() == [("join", "m", None)]
    assert sorted(r.member for r in hub.presence("r")) == ["m", "w"]


async def test_a_departure_from_another_node_of_a_member_here_is_ignored(
    hub_and_backplane: tuple[Hub, RecordingBackplane],
) -> None:
    hub, backplane = hub_and_backplane
    here, watcher = FakeMember("h"), FakeMember("w")
    for member in (here, watcher):
        await join(hub, "r", member)
    await flushed(hub)
    watcher.reset()
    assert backplane.listener is not None
    backplane.listener.remote_events("r", [Event(Kind.LEAVE, "h", {"gone": "h"}, {}, False)])
    await flushed(hub)
    assert watcher.events() == []
    assert "h" in hub.rooms["r"].members
    assert [r.member for r in hub.presence("r")] == ["h", "w"]


async def test_news_other_than_a_join_of_a_member_here_is_stale_and_ignored(
    hub_and_backplane: tuple[Hub, RecordingBackplane],
) -> None:
    """A node that lost a member while stalled (the member resumed here meanwhile) wakes up
    and reports its drop, and re-writes its presence: that must not end the member here,
    whose session is live (it went on, connected but told nothing: red team, issue #15)."""
    hub, backplane = hub_and_backplane
    here, watcher = FakeMember("h"), FakeMember("w")
    for member in (here, watcher):
        await join(hub, "r", member)
    await flushed(hub)
    watcher.reset()
    assert backplane.listener is not None
    stale = {"id": "h", "x": None, "status": "reconnecting"}
    backplane.listener.remote_events("r", [Event(Kind.NOTICE, "h", {"s": "h"}, stale, False)])
    backplane.listener.remote_events("r", [Event(Kind.MOVE, "h", {"x": 1}, stale, False)])
    backplane.listener.remote_presence("r", [PresenceChange(Change.JOINED, "h", stale)])
    backplane.listener.remote_presence("r", [PresenceChange(Change.UPDATED, "h", stale)])
    await flushed(hub)
    assert watcher.events() == []
    assert "h" in hub.rooms["r"].members
    hub.update("r", here, {"x": 2}, {"id": "h", "x": 2})  # it still speaks here
    await flushed(hub)
    assert watcher.events() == [("move", "h", 2)]


# -- the in-process store ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_record_is_taken_once() -> None:
    store = MemoryTtlStore()
    await store.put("k", {"id": "a"}, 60)
    assert await store.take("k") == {"id": "a"}
    assert await store.take("k") is None
    assert await store.take("never") is None


async def test_a_record_is_gone_after_its_ttl() -> None:
    clock = Clock()
    store = MemoryTtlStore(clock)
    await store.put("short", {"id": "a"}, 5)
    await store.put("long", {"id": "b"}, 60)
    clock.now += 5
    assert await store.take("short") is None
    assert await store.take("long") == {"id": "b"}


async def test_expired_records_are_dropped_as_later_ones_are_put() -> None:
    clock = Clock()
    store = MemoryTtlStore(clock)
    for i in range(100):
        await store.put(f"k{i}", {"i": i}, 1)
    clock.now += 1
    await store.put("fresh", {}, 60)
    assert len(store) == 1


async def test_putting_again_replaces_the_record_and_its_ttl() -> None:
    clock = Clock()
    store = MemoryTtlStore(clock)
    await store.put("k", {"v": 1}, 1)
    await store.put("k", {"v": 2}, 60)
    clock.now += 1
    assert await store.take("k") == {"v": 2}


# -- slots --------------------------------------------------------------------------------------


def test_least_used_slot() -> None:
    assert least_used([], 4) == 0
    assert least_used([0, 1, 2], 4) == 3
    assert least_used([0, 1, 2, 3], 4) == 0
    assert least_used([0, 0, 1, 1, 2, 3], 4) == 2
    assert least_used([7, -1, 0], 2) == 1  # out-of-range slots count for nothing


# -- members whose node died, kept for their grace ------------------------------------------------


class StatusTranslator(RecordTranslator):
    """Shows an orphan as ``status: gone-quiet``, as an app would show it reconnecting."""

    def orphan(self, state: JSON) -> JSON:
        return {**state, "status": "gone-quiet"}


@pytest.fixture
async def translating_hub() -> tuple[Hub, RecordingBackplane]:
    far = PresenceRecord("far", {"id": "far", "x": 2}, orphaned=True)
    backplane = RecordingBackplane([far])
    hub = Hub(CountingCodec(), backplane=backplane, translator=StatusTranslator(), tick=60.0)
    await hub.start()
    return hub, backplane


async def test_an_orphan_is_told_once_and_newcomers_see_the_translators_state(
    translating_hub: tuple[Hub, RecordingBackplane],
) -> None:
    hub, backplane = translating_hub
    watcher = FakeMember("w")
    # A member of a dead node found in the snapshot: shown as the app's orphan state.
    assert await join(hub, "r", watcher) == [{"id": "far", "x": 2, "status": "gone-quiet"}]
    await flushed(hub)
    watcher.reset()
    assert backplane.listener is not None
    state = {"id": "m", "x": 4}
    backplane.listener.remote_events("r", [Event(Kind.JOIN, "m", {"x": 4}, state, False)])
    await flushed(hub)
    watcher.reset()

    orphaned = PresenceChange(Change.ORPHANED, "m", state)
    backplane.listener.remote_presence("r", [orphaned])
    backplane.listener.remote_presence("r", [orphaned])  # a second sweep, or another path
    await flushed(hub)
    assert watcher.events() == [("notice", "m", 4)]
    assert {"id": "m", "x": 4, "status": "gone-quiet"} in await join(hub, "r", FakeMember("n"))
    # An orphan this hub never heard of is a join, with the orphan's state.
    backplane.listener.remote_presence("r", [PresenceChange(Change.ORPHANED, "new", state)])
    await flushed(hub)
    assert ("join", "new", 4) in watcher.events()


async def test_a_member_that_resumed_here_is_not_orphaned_by_its_old_node(
    translating_hub: tuple[Hub, RecordingBackplane],
) -> None:
    hub, backplane = translating_hub
    here, watcher = FakeMember("h"), FakeMember("w")
    for member in (here, watcher):
        await join(hub, "r", member)
    await flushed(hub)
    watcher.reset()
    assert backplane.listener is not None
    backplane.listener.remote_presence("r", [PresenceChange(Change.ORPHANED, "h", {"id": "h"})])
    await flushed(hub)
    assert watcher.events() == []
    assert "h" in hub.rooms["r"].members


async def test_join_hands_the_members_grace_to_the_backplane() -> None:
    graces: list[tuple[str, str, float]] = []

    class Recording(RecordingBackplane):
        def outlive(self, room: str, member: str, seconds: float, *, started: bool = False) -> None:
            graces.append((room, member, seconds))

    hub = Hub(CountingCodec(), backplane=Recording(), tick=60.0)
    await hub.start()
    await hub.join("r", FakeMember("a"), {}, {"id": "a"}, grace=30.0)
    await join(hub, "r", FakeMember("b"))
    assert graces == [("r", "a", 30.0), ("r", "b", 0.0)]


async def test_a_held_record_is_taken_by_nobody_until_it_is_put() -> None:
    store = MemoryTtlStore()
    await store.hold("k", {"id": "a"}, 60)
    assert await store.take("k") is None  # its holder (this process) lives
    await store.put("k", {"id": "a", "name": "Ada"}, 60)  # released, as when its session ends
    assert await store.take("k") == {"id": "a", "name": "Ada"}
    await store.hold("k", {"id": "a"}, 60)
    await store.discard("k")
    await store.put("other", {}, 60)
    assert await store.take("k") is None
    assert len(store) == 1
