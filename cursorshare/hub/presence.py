"""Presence: who is in a room, with an opaque state the app owns.

A presence record is a member id and its state. The hub and the backplanes store, copy, compare
and send states whole, and never look inside them: what a state means (a cursor, a name, a
colour...) is the app's business alone. A backplane reports the changes it finds by itself (a
node died, a comparison with the shared store after an outage) as presence changes; the app's
`Translator` turns each into the events receivers are told.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from .events import JSON, Event, Kind


@dataclass(frozen=True, slots=True)
class PresenceRecord:
    """A member present in a room (on any node). Its state is never mutated: it is replaced."""

    member: str
    state: JSON
    #: Its node is gone; it may come back (on any node) until its grace ends. ``state`` is
    #: the last one its node wrote: the hub shows `Translator.orphan` of it.
    orphaned: bool = False


class Change(enum.Enum):
    JOINED = "joined"
    UPDATED = "updated"
    #: Its node is gone, but it stays for its grace (it may resume on another node): the
    #: state is the last one its node wrote.
    ORPHANED = "orphaned"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A change of a room's presence that came without a message (a backplane inferred it)."""

    kind: Change
    member: str
    #: The member's whole state after the change; empty when it left.
    state: JSON


class Translator(Protocol):
    def events(self, change: PresenceChange) -> list[Event]:
        """The events that tell receivers of ``change`` (none when they need not know)."""

    def orphan(self, state: JSON) -> JSON:
        """The state of a member whose node is gone while it may come back (``state``: the
        last one its node wrote)."""


class RecordTranslator:
    """For a hub without an app's translator: receivers are told the record itself."""

    def events(self, change: PresenceChange) -> list[Event]:
        kind = {Change.JOINED: Kind.JOIN, Change.UPDATED: Kind.MOVE,
                Change.ORPHANED: Kind.NOTICE, Change.LEFT: Kind.LEAVE}  # fmt: skip
        return [Event(kind[change.kind], change.member, dict(change.state), change.state, False)]

    def orphan(self, state: JSON) -> JSON:
        return state
