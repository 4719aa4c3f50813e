"""The broadcast hub: rooms, presence, coalescing, fan-out, and its port to other nodes.

Backplanes that link several nodes implement `Backplane`; they live in `cursorshare.backplanes`.
"""

from .backplane import Backplane, BackplaneState, InMemoryBackplane, RemoteListener
from .events import JSON, Batch, Event, Kind
from .hub import Codec, Hub, HubStats, Member, Room
from .presence import Change, PresenceChange, PresenceRecord, RecordTranslator, Translator

__all__ = [
    "JSON",
    "Backplane",
    "BackplaneState",
    "Batch",
    "Change",
    "Codec",
    "Event",
    "Hub",
    "HubStats",
    "InMemoryBackplane",
    "Kind",
    "Member",
    "PresenceChange",
    "PresenceRecord",
    "RecordTranslator",
    "RemoteListener",
    "Room",
    "Translator",
]
