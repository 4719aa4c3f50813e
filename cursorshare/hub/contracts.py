"""What the hub asks of the app: members it delivers to, and the codec that encodes a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .events import Event


class Member(Protocol):
    """A receiver in a room, as the hub sees it (the app adapts a SockJS session to this)."""

    @property
    def id(self) -> str: ...

    @property
    def flavour(self) -> str:
        """Receivers of one flavour get the same bytes; the codec encodes once per flavour."""

    @property
    def backlog(self) -> int:
        """Bytes delivered that the client has not read yet."""

    def deliver(self, payload: bytes) -> None:
        """Hand over one encoded batch. Must not block."""

    def overflow(self) -> None:
        """The member stayed behind past the hub's bounds; it should be disconnected."""


class Codec(Protocol):
    def encode(self, flavour: str, events: Sequence[Event]) -> bytes | None:
        """One payload for every receiver of ``flavour``, or None when it has nothing to see."""
