"""`Batch`: a sender's moves collapse to the latest; joins and leaves are never dropped or
reordered against moves."""

from __future__ import annotations

from cursorshare.hub import Batch, Event, Kind


def move(sender: str, x: float) -> Event:
    return Event(Kind.MOVE, sender, {"type": "move", "sender": sender, "x": x}, {"x": x})


def join(sender: str) -> Event:
    return Event(Kind.JOIN, sender, {"type": "join", "id": sender}, {"id": sender})


def leave(sender: str) -> Event:
    return Event(Kind.LEAVE, sender, {"type": "leave", "id": sender}, {})


def shape(events: list[Event]) -> list[tuple[str, str, object]]:
    return [(e.kind.value, e.sender, e.data.get("x")) for e in events]


def test_moves_of_one_sender_collapse_to_the_latest() -> None:
    batch = Batch()
    for x in (1, 2, 3, 4):
        batch.add(move("a", x))
    assert shape(batch.take()) == [("move", "a", 4)]
    assert batch.coalesced == 3


def test_latest_move_takes_its_place_in_time() -> None:
    batch = Batch()
    batch.extend([move("a", 1), move("b", 1), move("a", 2), move("c", 1)])
    assert shape(batch.take()) == [("move", "b", 1), ("move", "a", 2), ("move", "c", 1)]
    assert batch.coalesced == 1


def test_each_sender_keeps_its_own_latest_move() -> None:
    batch = Batch()
    for x in range(5):
        for sender in ("a", "b", "c"):
            batch.add(move(sender, x))
    assert shape(batch.take()) == [("move", "a", 4), ("move", "b", 4), ("move", "c", 4)]


def test_move_leave_join_move_keeps_every_event_in_order() -> None:
    batch = Batch()
    batch.extend([move("a", 1), leave("a"), join("a"), move("a", 2)])
    assert shape(batch.take()) == [
        ("move", "a", 1),
        ("leave", "a", None),
        ("join", "a", None),
        ("move", "a", 2),
    ]
    assert batch.coalesced == 0


def test_a_later_move_never_jumps_over_its_senders_join_or_leave() -> None:
    batch = Batch()
    batch.extend([join("a"), move("a", 1), move("a", 2), leave("a"), move("a", 3), move("a", 4)])
    assert shape(batch.take()) == [
        ("join", "a", None),
        ("move", "a", 2),
        ("leave", "a", None),
        ("move", "a", 4),
    ]


def test_other_senders_joins_do_not_seal_a_move() -> None:
    batch = Batch()
    batch.extend([move("a", 1), join("b"), move("a", 2), leave("c")])
    assert shape(batch.take()) == [
        ("join", "b", None),
        ("move", "a", 2),
        ("leave", "c", None),
    ]


def test_joins_and_leaves_are_never_dropped() -> None:
    batch = Batch()
    batch.extend([join("a"), join("a"), leave("a"), leave("a"), join("b")])
    assert [e.kind for e in batch.take()] == [
        Kind.JOIN,
        Kind.JOIN,
        Kind.LEAVE,
        Kind.LEAVE,
        Kind.JOIN,
    ]


def test_take_empties_the_batch_and_starts_afresh() -> None:
    batch = Batch()
    assert not batch
    assert len(batch) == 0
    batch.extend([move("a", 1), leave("a"), move("a", 2)])
    assert batch
    assert len(batch) == 3
    assert len(batch.take()) == 3
    assert not batch
    assert batch.take() == []
    # A move after take() is a fresh one, not one sealed by the earlier leave.
    batch.extend([move("a", 3), move("a", 4)])
    assert shape(batch.take()) == [("move", "a", 4)]


def test_event_wire_round_trip_marks_it_remote() -> None:
    event = Event(Kind.MOVE, "a", {"x": 1}, {"x": 1, "y": 2})
    assert event.local
    back = Event.from_wire(event.to_wire())
    assert (back.kind, back.sender, back.data, back.state) == (
        Kind.MOVE,
        "a",
        {"x": 1},
        {"x": 1, "y": 2},
    )
    assert back.local is False
