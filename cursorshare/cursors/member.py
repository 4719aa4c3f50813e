"""A SockJS session as the hub sees it: a member of a room, kept while it may be resumed."""

from __future__ import annotations

import asyncio

from ..hub import JSON
from ..sockjs import Session
from ..sockjs.messages import SLOW_CONSUMER


class CursorMember:
    """A SockJS session seen as a hub member; without a session while it may be resumed."""

    __slots__ = (
        "address", "flavour", "id", "key_told", "resume_key", "room", "session", "state", "timer",
        "warned", "writes",
    )  # fmt: skip

    def __init__(
        self, session: Session, room: str, flavour: str, state: JSON, resume_key: str | None
    ) -> None:
        self.id: str = state["id"]
        self.session: Session | None = session
        #: The client address of the session that opened it (bounds what it leaves behind).
        self.address = session.remote or ""
        self.room = room
        self.flavour = flavour
        #: Its presence state (see `presence`): replaced, never mutated, on each change.
        self.state = state
        #: The key its client resumes it with (v2 only; never logged, told to it alone).
        self.resume_key = resume_key
        #: Its client has its key (it presented it to resume): even a session of it that ends
        #: before its welcome left can be resumed.
        self.key_told = False
        #: Ends it when its grace is over, while it has no session.
        self.timer: asyncio.TimerHandle | None = None
        self.warned = False
        #: Its resume record's writes, one at a time and in order (a hold must never land
        #: after the release that followed it).
        self.writes = asyncio.Lock()

    @property
    def backlog(self) -> int:
        return 0 if self.session is None else self.session.backlog

    def deliver(self, payload: bytes) -> None:
        if self.session is not None:
            self.session.send_frame(payload)

    def overflow(self) -> None:
        if self.session is not None:
            self.session.close(*SLOW_CONSUMER)
