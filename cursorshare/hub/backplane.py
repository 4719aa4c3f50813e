"""How hubs on several nodes share rooms. The in-memory backplane is the single-node default."""

from __future__ import annotations

import abc
from collections.abc import Callable

from .events import JSON, Event

#: Called by the backplane with events that happened on other nodes, per room.
RemoteEvents = Callable[[str, list[Event]], None]


class Backplane(abc.ABC):
    """The hub's link to the other nodes: one channel per room, and presence.

    Implementations never block the hub: `publish` returns at once, and when the link is
    down the node keeps serving its own users and drops what it could not send.
    """

    @property
    @abc.abstractmethod
    def state(self) -> str:
        """ "local" (no other nodes), "up", or "down"."""

    @abc.abstractmethod
    async def start(self, on_remote: RemoteEvents) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def join_room(self, room: str) -> list[JSON]:
        """Start receiving the room's events; return the users present on other nodes."""

    @abc.abstractmethod
    async def leave_room(self, room: str) -> None:
        """Stop receiving the room's events (no local member is left)."""

    def counters(self) -> dict[str, int]:
        """Running totals for /metrics (batches published, received, dropped...)."""
        return {}

    @abc.abstractmethod
    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        """Send this node's coalesced batch of one tick; ``presence`` maps each changed local
        user to its current state (None when it left)."""


class InMemoryBackplane(Backplane):
    """One process, no other nodes: nothing to send, nobody else present."""

    @property
    def state(self) -> str:
        return "local"

    async def start(self, on_remote: RemoteEvents) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def join_room(self, room: str) -> list[JSON]:
        return []

    async def leave_room(self, room: str) -> None:
        return None

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        return None
