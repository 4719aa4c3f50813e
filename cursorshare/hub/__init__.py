"""The broadcast hub: rooms, coalescing, fan-out, and the backplanes that link nodes."""

from .backplane import Backplane, InMemoryBackplane, RemoteEvents
from .events import JSON, Batch, Event, Kind
from .hub import Codec, Hub, HubStats, Member, Room

__all__ = [
    "JSON",
    "Backplane",
    "Batch",
    "Codec",
    "Event",
    "Hub",
    "HubStats",
    "InMemoryBackplane",
    "Kind",
    "Member",
    "RemoteEvents",
    "Room",
]
