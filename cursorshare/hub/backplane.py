"""The hub's port to the other nodes: the backplane interface, and the single-node default.

Implementations that link several nodes live in `cursorshare.backplanes`; they depend on this
interface, the hub never on them.
"""

from __future__ import annotations

import abc
import enum
from typing import Protocol

from .events import JSON, Event
from .presence import PresenceChange, PresenceRecord
from .store import TtlStore


class BackplaneState(enum.StrEnum):
    LOCAL = "local"
    """No other nodes: this node sees everyone."""
    UP = "up"
    """Linked to the other nodes."""
    DOWN = "down"
    """The link is lost: the node serves its own users only, until it is back."""

    @property
    def healthy(self) -> bool:
        """Whether this node's users see the users of every node."""
        return self is not BackplaneState.DOWN


class RemoteListener(Protocol):
    """What a backplane reports to (the hub)."""

    def remote_events(self, room: str, events: list[Event]) -> None:
        """Another node's batch of one tick: its members' events, with their states."""

    def remote_presence(self, room: str, changes: list[PresenceChange]) -> None:
        """Changes the backplane found by itself; no message came with them."""

    def remote_farewell(self, room: str, member: str) -> None:
        """Another node asks the node that holds ``member`` of ``room`` to end it now."""

    def remote_handover(self, room: str, member: str) -> None:
        """Another node took ``member`` of ``room`` over: its holder lets it go silently."""


class Backplane(abc.ABC):
    """The hub's link to the other nodes: one channel per room, and presence.

    Implementations never block the hub: `publish` returns at once, and when the link is
    down the node keeps serving its own users and drops what it could not send.
    """

    @property
    @abc.abstractmethod
    def state(self) -> BackplaneState: ...

    @abc.abstractmethod
    async def start(self, listener: RemoteListener) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def join_room(self, room: str) -> list[PresenceRecord]:
        """Start receiving the room's events; return the members present on other nodes."""

    @abc.abstractmethod
    async def leave_room(self, room: str) -> None:
        """Stop receiving the room's events (no local member is left)."""

    async def claim_slot(
        self, room: str, member: str, slots: int, keep: int | None = None
    ) -> int | None:
        """Claim for ``member`` the least-used of ``slots`` slots among the members of ``room``
        on every node (ties: the lowest), or the slot ``keep`` (a returning member), at once
        for all nodes. None: there is no store shared with other nodes (this one, or the link
        to it, is down): the caller chooses from the room's presence, and claims its choice
        as ``keep`` (a backplane whose link is down writes it once the link is back)."""
        return None

    def outlive(self, room: str, member: str, seconds: float, *, started: bool = False) -> None:
        """``member``, of this node, may come back (on any node) within ``seconds`` of losing
        its connection: should this node die, or stop, meanwhile, the others keep it present
        (`Change.ORPHANED`) that long before it leaves. 0 (the default): it leaves with its
        node. ``started``: it has lost its connection, its grace runs from now; should this
        node die or stop meanwhile, the others keep it only for what is left (set again
        without ``started`` once it is back). Without other nodes there is nothing to do."""
        return None

    async def farewell(self, room: str, member: str) -> None:
        """Ask every node in ``room`` to end ``member`` now, if it holds it (its client said
        it is gone for good, to this node, but another may hold it). Never raises: when the
        link is down the request is lost. Without other nodes there is nobody to ask."""
        return None

    async def hand_over(self, room: str, member: str) -> None:
        """Tell the node in ``room`` that holds ``member`` that this node took it over (its
        record was seized in the shared store): it lets it go silently, no departure told, its
        presence entry left to this node. Awaited before this node announces it, so that the
        holder hears this first. Never raises; without other nodes there is nobody to tell."""
        return None

    def shared_store(self) -> TtlStore | None:
        """A record store shared by every node; None: only this process's (no other nodes)."""
        return None

    def counters(self) -> dict[str, int]:
        """Running totals for /metrics (batches published, received, dropped...)."""
        return {}

    @abc.abstractmethod
    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        """Send this node's coalesced batch of one tick; ``presence`` maps each changed local
        member to its whole current state (None when it left)."""


class InMemoryBackplane(Backplane):
    """One process, no other nodes: nothing to send, nobody else present."""

    @property
    def state(self) -> BackplaneState:
        return BackplaneState.LOCAL

    async def start(self, listener: RemoteListener) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def join_room(self, room: str) -> list[PresenceRecord]:
        return []

    async def leave_room(self, room: str) -> None:
        return None

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        return None
