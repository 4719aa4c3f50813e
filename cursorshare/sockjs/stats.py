"""Counters of one endpoint, shared by its sessions and exported by `/metrics`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class EndpointStats:
    messages_in: int = 0
    #: Messages dropped by the per-session rate limit.
    messages_dropped: int = 0
    #: Websocket frames that carried no message (empty, fragments, pings, pongs), charged
    #: to the session's budget like messages.
    frames_charged: int = 0
    #: New sessions refused by max_sessions / max_sessions_per_address.
    sessions_refused: int = 0
    #: Sessions closed, by the close code they were closed with.
    closes: Counter[int] = field(default_factory=Counter)
