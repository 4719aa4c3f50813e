"""A SockJS session as the hub sees it: a member of a room, kept while it may be resumed."""

from __future__ import annotations

import asyncio
import logging

from ..hub import JSON, StoreUnavailable, TtlStore
from ..sockjs import Session
from ..sockjs.messages import SLOW_CONSUMER
from . import identity

log = logging.getLogger("cursorshare.cursors")


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

    # -- its resume record --------------------------------------------------------------------

    async def hold_record(self, store: TtlStore, grace: float) -> None:
        """Keep its resume record current while its session lives: should this node die, its
        client resumes it on another node (the store keeps it past this process)."""
        if self.resume_key is None or grace <= 0:
            return
        async with self.writes:
            if self.session is None:
                return  # dropped meanwhile: its record was released (or discarded) already
            record = identity.record(self.state, self.room)
            await store.hold(identity.store_key(self.resume_key), record, grace, self.room)

    async def discard_record(self, store: TtlStore) -> None:
        """Its key gives nothing back any more."""
        if self.resume_key is None:
            return
        try:
            async with self.writes:
                await store.discard(identity.store_key(self.resume_key))
        except StoreUnavailable as exc:  # its record expires at the end of the grace
            log.warning("resume store unavailable, %s's record is kept: %s", self.id, exc)
