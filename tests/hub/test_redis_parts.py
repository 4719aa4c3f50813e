"""The Redis backplane's parts that need no Redis: the key layout and its forms, the outbox's
bounds, and remote presence fed with other nodes' batches. (With a redis-server: the tests in
tests/cluster/test_backplane.py.)"""

from __future__ import annotations

import pytest

from cursorshare.backplanes.redis.keys import Batch, Entry, KeyLayout, needle
from cursorshare.backplanes.redis.link import Link
from cursorshare.backplanes.redis.liveness import NodeLiveness
from cursorshare.backplanes.redis.outbox import Outbox
from cursorshare.backplanes.redis.presence import RemotePresence
from cursorshare.hub import Event, Kind, PresenceChange, PresenceRecord

# -- keys -------------------------------------------------------------------------------------


def test_key_layout_names_and_reads_back_rooms() -> None:
    keys = KeyLayout("p")
    assert keys.channel("r.1") == "p:room:r.1"
    assert keys.room_of(b"p:room:r.1") == "r.1"
    assert keys.room_of(b"p:nodes") is None
    assert keys.room_of(b"q:room:r.1") is None
    assert keys.presence("r") == "p:presence:r"
    assert keys.room_of_presence(b"p:presence:r") == "r"
    assert keys.presence_pattern == "p:presence:*"
    assert keys.node("n1") == "p:node:n1"
    assert keys.nodes_channel == "p:nodes"


def test_entries_carry_any_state_and_their_writer() -> None:
    entry = Entry("n1", "abc", {"anything": [1, {"nested": None}], "inst": "not the writer"})
    raw = entry.encode()
    assert Entry.decode(raw) == entry
    assert needle("abc") in raw
    assert needle("abd") not in raw
    for bad in (b"{", b"[]", b'{"node":"n","inst":"i"}', b'{"node":1,"inst":"i","state":{}}'):
        assert Entry.decode(bad) is None


def test_batches_round_trip_and_refuse_what_is_not_one() -> None:
    events = [Event(Kind.JOIN, "m", {"a": 1}, {"s": 1}), Event(Kind.LEAVE, "m", {}, {})]
    back = Batch.decode(Batch("n1", "abc", events).encode())
    assert (back.node, back.inst) == ("n1", "abc")
    assert [(e.kind, e.sender, e.data, e.state, e.local) for e in back.events] == [
        (Kind.JOIN, "m", {"a": 1}, {"s": 1}, False),
        (Kind.LEAVE, "m", {}, {}, False),
    ]
    for bad in (b'{"node":"n","inst":"i"}', b'{"node":"n","inst":"i","events":[["?","m",{},{}]]}'):
        with pytest.raises((KeyError, ValueError, TypeError)):
            Batch.decode(bad)


# -- the outbox -------------------------------------------------------------------------------


def outbox(**limits: int) -> Outbox:
    options = {"presence_ttl": 120, "outbox_limit": 3, "batch_limit": 2, "dirty_limit": 4}
    return Outbox(KeyLayout(), "n1", "abc", **{**options, **limits})


def test_the_outbox_keeps_the_newest_batches_and_counts_the_dropped() -> None:
    box = outbox()
    for i in range(5):
        box.put("r", f"b{i}".encode(), {}, away=True)
    assert len(box) == 3
    assert box.dropped == 2


def test_the_outbox_holds_this_nodes_members_and_marks_each_change_once() -> None:
    box = outbox()
    box.put("r", None, {"a": {"s": 1}, "b": {"s": 1}}, away=False)
    box.put("r", None, {"a": {"s": 2}, "b": None}, away=False)
    assert box.holds("r", "a") and not box.holds("r", "b") and not box.holds("q", "a")
    assert box.pending_presence == 2
    assert len(box) == 0


def test_departures_are_forgotten_past_the_limit_while_redis_is_away() -> None:
    box = outbox(dirty_limit=4)
    box.put("r", None, {"stays": {"s": 1}}, away=True)
    for i in range(10):
        box.put(f"room{i}", None, {f"u{i}": {"s": 1}}, away=True)
        box.put(f"room{i}", None, {f"u{i}": None}, away=True)
    assert box.pending_presence <= 2 * 4
    assert box.needs_purge
    assert box.holds("r", "stays")
    # Every present member is written again after a reconnection, each once.
    box.rewrite_all()
    assert box.pending_presence >= 1


def test_departures_are_kept_while_redis_is_up() -> None:
    box = outbox(dirty_limit=4)
    for i in range(10):
        box.put("r", None, {f"u{i}": None}, away=False)
    assert box.pending_presence == 10
    assert not box.needs_purge


# -- remote presence --------------------------------------------------------------------------


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.changes: list[PresenceChange] = []

    def remote_events(self, room: str, events: list[Event]) -> None:
        self.events += [(room, e.kind.value, e.sender) for e in events]

    def remote_presence(self, room: str, changes: list[PresenceChange]) -> None:
        self.changes += changes


async def not_linked() -> None:
    return None


async def test_remote_presence_follows_other_nodes_batches() -> None:
    keys = KeyLayout()
    remote = RemotePresence(
        keys, NodeLiveness(keys, "n1", "abc", ttl=3, heartbeat=1), lambda r, m: False
    )
    listener = remote.listener = Listener()
    remote.receive("r", "n2", "x", [Event(Kind.JOIN, "m", {}, {"s": 0})])
    assert listener.events == [] and remote.received == 0  # a room nobody here is in

    assert await remote.open("r", not_linked) == []
    assert remote.tracks("r")
    remote.receive("r", "n2", "x", [Event(Kind.JOIN, "m", {}, {"s": 0})])
    remote.receive("r", "n2", "x", [Event(Kind.MOVE, "m", {}, {"s": 1})])
    remote.receive("r", "n2", "x", [Event(Kind.MOVE, "o", {}, {"s": 5})])
    assert remote.records("r") == [PresenceRecord("m", {"s": 1}), PresenceRecord("o", {"s": 5})]
    remote.receive("r", "n2", "x", [Event(Kind.LEAVE, "m", {}, {}), Event(Kind.LEAVE, "m", {}, {})])
    assert listener.events == [
        ("r", "join", "m"),
        ("r", "move", "m"),
        ("r", "move", "o"),
        ("r", "leave", "m"),  # once: a leave of a member not known is not told again
    ]
    assert remote.received == 4
    assert remote.records("r") == [PresenceRecord("o", {"s": 5})]

    # Opened twice, closed once: still tracked; closed again: forgotten.
    await remote.open("r", not_linked)
    assert not remote.close("r")
    assert remote.close("r")
    assert not remote.tracks("r") and remote.records("r") == []


async def test_a_member_that_moved_to_another_node_is_told_and_its_old_node_is_not() -> None:
    # Issue #13: a member resumed on node n3 after its session on n2 dropped. A third node
    # must tell its hub of the join from n3 (receivers see it active again), though it knew
    # the member already; a join repeated by the same node (a reconcile told it) is not.
    keys = KeyLayout()
    remote = RemotePresence(
        keys, NodeLiveness(keys, "n1", "abc", ttl=3, heartbeat=1), lambda r, m: False
    )
    listener = remote.listener = Listener()
    await remote.open("r", not_linked)
    remote.receive("r", "n2", "x", [Event(Kind.JOIN, "m", {}, {"s": 0})])
    remote.receive("r", "n2", "x", [Event(Kind.JOIN, "m", {}, {"s": 0})])
    remote.receive("r", "n3", "y", [Event(Kind.JOIN, "m", {}, {"s": 1})])
    assert listener.events == [("r", "join", "m"), ("r", "join", "m")]
    assert remote.records("r") == [PresenceRecord("m", {"s": 1})]
    # Its stale departure from n2 (its grace ended there) changes nothing: n3 holds it now.
    remote.receive("r", "n2", "x", [Event(Kind.LEAVE, "m", {}, {})])
    assert remote.records("r") == [PresenceRecord("m", {"s": 1})]
    remote.receive("r", "n3", "y", [Event(Kind.LEAVE, "m", {}, {})])
    assert remote.records("r") == []
    assert listener.events[2:] == [("r", "leave", "m")]


def test_a_link_needs_a_channel_to_read_from() -> None:
    async def connected(client: object) -> None:
        return None

    with pytest.raises(ValueError):
        Link(
            "redis://127.0.0.1:1/0",
            [],
            timeout=1,
            backoff_min=0.1,
            backoff_max=1,
            on_message=lambda channel, data: None,
            on_connect=connected,
            on_up=lambda client, outage: [],
        )
