"""What receivers are told of presence changes a backplane found by itself (a node died, a
comparison with Redis after an outage): the cursor app's translation, for both flavours."""

from __future__ import annotations

from typing import Any

import orjson

from cursorshare.cursors.messages import TUTORIAL, V2, CursorCodec
from cursorshare.cursors.presence import CursorPresence
from cursorshare.hub import JSON, Change, Event, Kind, PresenceChange

codec = CursorCodec()
translator = CursorPresence()


def told(change: Change, member: str, state: JSON) -> list[Event]:
    return translator.events(PresenceChange(change, member, state))


def decoded(flavour: str, events: list[Event]) -> list[dict[str, Any]]:
    payload = codec.encode(flavour, events)
    assert payload is not None and payload.startswith(b"a")
    return [orjson.loads(m) for m in orjson.loads(payload[1:])]


V2_STATE = {"id": "v", "color": "#111", "name": "Ada", "x": 0.25, "y": 0.5, "px": False,
            "status": "away", "pointer": "pen"}  # fmt: skip
PX_STATE = {"id": "t", "color": "#222", "name": "", "x": 640, "y": 200, "px": True,
            "status": "active", "pointer": "mouse"}  # fmt: skip


def test_a_missed_member_is_told_as_a_join_and_a_move_in_each_flavour_shape() -> None:
    assert decoded(V2, told(Change.JOINED, "v", V2_STATE)) == [
        {"type": "join", "id": "v", "color": "#111", "name": "Ada", "status": "away",
         "pointer": "pen"},
        {"type": "move", "sender": "v", "color": "#111", "name": "Ada", "x": 0.25, "y": 0.5,
         "pointer": "pen"},
    ]  # fmt: skip
    assert decoded(TUTORIAL, told(Change.JOINED, "v", V2_STATE)) == [
        {"x": 250, "y": 500, "sender": "v", "color": "#111"}
    ]
    assert decoded(V2, told(Change.JOINED, "t", PX_STATE))[1] == {
        "type": "move", "sender": "t", "color": "#222", "x": 640, "y": 200, "px": True,
    }  # fmt: skip
    assert decoded(TUTORIAL, told(Change.JOINED, "t", PX_STATE)) == [
        {"x": 640, "y": 200, "sender": "t", "color": "#222"}
    ]
    # Not moved yet: a join only.
    fresh = {**V2_STATE, "x": None, "y": None}
    assert [e.kind for e in told(Change.JOINED, "v", fresh)] == [Kind.JOIN]
    assert codec.encode(TUTORIAL, told(Change.JOINED, "v", fresh)) is None


def test_a_changed_member_is_told_as_its_status_and_a_move_and_a_gone_one_as_a_leave() -> None:
    assert decoded(V2, told(Change.UPDATED, "v", {**V2_STATE, "name": "Bea"})) == [
        {"type": "presence", "id": "v", "status": "away"},
        {"type": "move", "sender": "v", "color": "#111", "name": "Bea", "x": 0.25, "y": 0.5,
         "pointer": "pen"},
    ]  # fmt: skip
    assert decoded(V2, told(Change.UPDATED, "v", {**V2_STATE, "x": None, "y": None})) == [
        {"type": "presence", "id": "v", "status": "away"}
    ]
    assert codec.encode(TUTORIAL, told(Change.UPDATED, "v", {**V2_STATE, "x": None})) is None
    assert decoded(V2, told(Change.LEFT, "v", {})) == [{"type": "leave", "id": "v"}]
    assert codec.encode(TUTORIAL, told(Change.LEFT, "v", {})) is None
    every = [e for c in Change for e in told(c, "v", V2_STATE if c is not Change.LEFT else {})]
    assert not any(e.local for e in every)  # never published again by the receiving node
