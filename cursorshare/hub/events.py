"""What flows through the hub: events, and the batch that coalesces them between two ticks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


class Kind(enum.Enum):
    JOIN = "join"
    #: The sender's state changed (for the cursor app, a move); the latest one wins.
    MOVE = "move"
    #: The sender's state changed, and receivers must be told this change (a status): never
    #: coalesced away by a later one.
    NOTICE = "notice"
    LEAVE = "leave"


@dataclass(slots=True)
class Event:
    """One thing that happened in a room.

    ``data`` is what receivers are told (the codec shapes it per flavour of receiver);
    ``state`` is the sender's whole presence state after the event (empty for a leave): what
    the room remembers of it for newcomers. Both are the app's; the hub never looks inside.
    """

    kind: Kind
    sender: str
    data: JSON
    state: JSON
    #: True when it happened on this node (and so must be published to the others).
    local: bool = True

    def to_wire(self) -> list[Any]:
        return [self.kind.value, self.sender, self.data, self.state]

    @classmethod
    def from_wire(cls, item: list[Any]) -> Event:
        kind, sender, data, state = item
        return cls(Kind(kind), str(sender), dict(data), dict(state), local=False)


class Batch:
    """Events in time order, where a sender's moves collapse to the latest.

    A later move replaces the same sender's pending move and takes its place in time, so the
    batch stays in the order things happened. A join or leave of that sender seals its
    earlier move: joins and leaves are never dropped or reordered against moves.
    """

    __slots__ = ("_events", "_generation", "_sequence", "coalesced")

    def __init__(self) -> None:
        self._events: dict[object, Event] = {}
        self._generation: dict[str, int] = {}
        self._sequence = 0
        #: Moves dropped because a later one from the same sender replaced them.
        self.coalesced = 0

    def add(self, event: Event) -> None:
        key: object
        if event.kind is Kind.MOVE:
            key = (event.sender, self._generation.get(event.sender, 0))
            if self._events.pop(key, None) is not None:
                self.coalesced += 1
        else:
            self._generation[event.sender] = self._generation.get(event.sender, 0) + 1
            self._sequence += 1
            key = self._sequence
        self._events[key] = event

    def extend(self, events: list[Event]) -> None:
        for event in events:
            self.add(event)

    def take(self) -> list[Event]:
        events = list(self._events.values())
        self._events.clear()
        self._generation.clear()
        return events

    def __bool__(self) -> bool:
        return bool(self._events)

    def __len__(self) -> int:
        return len(self._events)
