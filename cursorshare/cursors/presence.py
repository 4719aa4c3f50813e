"""The cursor app's presence: what a member's state holds, and what receivers are told of a
presence change that came without a message (a backplane found it by itself).

A member's state is ``{"id", "color", "name", "x", "y", "px", "status", "pointer"}``: ``x``
and ``y`` are null before its first move, ``px`` says its last move came from a tutorial
client (pixels), ``status`` is active, away or reconnecting (its session dropped; it may
resume), ``pointer`` how its cursor is drawn. It is what a newcomer's welcome lists.
"""

from __future__ import annotations

from ..hub import JSON, Change, Event, Kind, PresenceChange
from .messages import ACTIVE, RECONNECTING


def first_state(member: str, color: str, name: str) -> JSON:
    """A newcomer's state: not moved yet."""
    return {"id": member, "color": color, "name": name, "x": None, "y": None, "px": False,
            "status": ACTIVE, "pointer": "mouse"}  # fmt: skip


def join_data(state: JSON) -> JSON:
    return {"type": "join", "id": state.get("id"), "color": state.get("color"),
            "name": state.get("name", ""), "status": state.get("status", ACTIVE),
            "pointer": state.get("pointer", "mouse")}  # fmt: skip


def leave_data(member: str) -> JSON:
    return {"type": "leave", "id": member}


def presence_data(member: str, status: str) -> JSON:
    return {"type": "presence", "id": member, "status": status}


def move_event(member: str, state: JSON) -> Event | None:
    """A move to the position in ``state`` (None when it has none yet)."""
    x, y = state.get("x"), state.get("y")
    if x is None or y is None:
        return None
    color = state.get("color")
    data: JSON
    if state.get("px"):  # a tutorial client: its moves carry no type
        data = {"x": x, "y": y, "sender": member, "color": color}
    else:
        data = {"type": "move", "sender": member, "color": color, "name": state.get("name", ""),
                "x": x, "y": y, "pointer": state.get("pointer", "mouse")}  # fmt: skip
    return Event(Kind.MOVE, member, data, state, local=False)


class CursorPresence:
    """Tells receivers of a member they missed as a join and a move to its position; of a
    member whose state changed meanwhile as its status and a move; of one whose node died as
    reconnecting (it may resume elsewhere within its grace); of one gone as a leave."""

    def orphan(self, state: JSON) -> JSON:
        return {**state, "status": RECONNECTING}

    def events(self, change: PresenceChange) -> list[Event]:
        member, state = change.member, change.state
        if change.kind is Change.LEFT:
            return [Event(Kind.LEAVE, member, leave_data(member), {}, local=False)]
        if change.kind is Change.ORPHANED:
            data = presence_data(member, state.get("status", RECONNECTING))
            return [Event(Kind.NOTICE, member, data, state, local=False)]
        events = []
        if change.kind is Change.JOINED:
            events.append(Event(Kind.JOIN, member, join_data(state), state, local=False))
        elif "status" in state:
            data = presence_data(member, state["status"])
            events.append(Event(Kind.NOTICE, member, data, state, local=False))
        move = move_event(member, state)
        if move is not None:
            events.append(move)
        return events
