"""The sessions of one endpoint, and the delivery of their events to the handler."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import frames
from .messages import SHUTDOWN, MsgType, SockjsMessage
from .options import EndpointOptions
from .session import Session

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("cursorshare.sockjs")

Handler = Callable[[SockjsMessage, Session], Awaitable[None]]


@dataclass(slots=True)
class EndpointStats:
    messages_in: int = 0
    #: Messages dropped by the per-session rate limit.
    messages_dropped: int = 0
    #: New sessions refused by max_sessions / max_sessions_per_address.
    sessions_refused: int = 0
    #: Sessions closed, by the close code they were closed with.
    closes: Counter[int] = field(default_factory=Counter)


class SessionManager(Mapping[str, Session]):
    """Every live session of one endpoint, by key (its session id, unique per websocket).

    Lifecycle events (CLOSE, CLOSED) of a session reach the handler in order, from one task
    per session at a time; OPEN and MESSAGE are awaited by the transport that received them.
    """

    def __init__(self, name: str, handler: Handler, options: EndpointOptions) -> None:
        self.name = name
        self.handler = handler
        self.options = options
        self._sessions: dict[str, Session] = {}
        self._keys: dict[Session, str] = {}
        self._per_address: Counter[str | None] = Counter()
        self._pending_events: dict[Session, list[SockjsMessage]] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._websocket_ids = itertools.count()
        self.stats = EndpointStats()

    # -- Mapping ------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Session:
        return self._sessions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def sessions(self) -> Mapping[str, Session]:
        """Live sessions by key (aiohttp-sockjs compatible spelling)."""
        return self._sessions

    # -- sessions -----------------------------------------------------------------------------

    def create(
        self,
        session_id: str,
        *,
        transport: str,
        remote: str | None,
        query: Mapping[str, str],
        request: web.Request | None = None,
    ) -> Session:
        """A new session; websocket sessions get a key of their own (ids may be reused)."""
        session = Session(
            self, session_id, transport=transport, remote=remote, query=query, request=request
        )
        key = session_id
        if transport == "websocket":
            key = f"{session_id}#ws{next(self._websocket_ids)}"
        self._sessions[key] = session
        self._keys[session] = key
        self._per_address[remote] += 1
        return session

    def remove(self, session: Session) -> None:
        key = self._keys.pop(session, None)
        if key is not None:
            self._sessions.pop(key, None)
            self._per_address[session.remote] -= 1
            if self._per_address[session.remote] <= 0:
                del self._per_address[session.remote]

    def has_room_for(self, remote: str | None) -> bool:
        """False when a new session from ``remote`` would pass a session limit."""
        options = self.options
        if (
            len(self._sessions) >= options.max_sessions
            or self._per_address[remote] >= options.max_sessions_per_address
        ):
            self.stats.sessions_refused += 1
            return False
        return True

    def broadcast(self, message: str) -> None:
        """Send one message to every open session, encoded once."""
        frame = frames.encode_messages((message,))
        for session in list(self._sessions.values()):
            session.send_frame(frame)

    # -- handler ------------------------------------------------------------------------------

    async def dispatch(self, session: Session, message: SockjsMessage) -> None:
        """Await the handler; its errors are logged once, never sent to the client."""
        if message.type is MsgType.MESSAGE:
            self.stats.messages_in += 1
            if not session.admit_message():
                self.stats.messages_dropped += 1
                return
        try:
            await self.handler(message, session)
        except Exception:
            log.exception(
                "sockjs handler failed on %s for session %s", message.type.value, session.id
            )

    def emit(self, session: Session, message: SockjsMessage) -> None:
        """Queue a lifecycle event for the handler, after the session's earlier ones."""
        pending = self._pending_events.get(session)
        if pending is not None:
            pending.append(message)
            return
        self._pending_events[session] = [message]
        task = asyncio.get_running_loop().create_task(self._drain_events(session))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _drain_events(self, session: Session) -> None:
        pending = self._pending_events[session]
        try:
            while pending:
                await self.dispatch(session, pending.pop(0))
        finally:
            del self._pending_events[session]

    # -- lifecycle ----------------------------------------------------------------------------

    async def shutdown(self, app: web.Application | None = None) -> None:
        """Close every session with the shutdown frame and let the handler see them go."""
        for session in list(self._sessions.values()):
            session.close(*SHUTDOWN)
        # Give receivers one loop turn to write their close frames before connections drop.
        await asyncio.sleep(0)
        for session in list(self._sessions.values()):
            session.expire()
        while self._event_tasks:
            await asyncio.gather(*self._event_tasks, return_exceptions=True)

    def count_by_transport(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for session in self._sessions.values():
            counts[session.transport] = counts.get(session.transport, 0) + 1
        return counts
