"""The broadcast hub: rooms, presence, coalescing, fan-out, and its port to other nodes.

Backplanes that link several nodes implement `Backplane`; they live in `cursorshare.backplanes`.
"""

from .backplane import Backplane, BackplaneState, InMemoryBackplane, RemoteListener
from .contracts import Codec, Member
from .events import JSON, Batch, Event, Kind
from .hub import Hub, HubStats, Room
from .presence import Change, PresenceChange, PresenceRecord, RecordTranslator, Translator
from .store import MemoryTtlStore, StoreUnavailable, TtlStore, least_used

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
    "MemoryTtlStore",
    "PresenceChange",
    "PresenceRecord",
    "RecordTranslator",
    "RemoteListener",
    "Room",
    "StoreUnavailable",
    "Translator",
    "TtlStore",
    "least_used",
]
