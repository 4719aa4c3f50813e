"""The sessions of one endpoint, and the delivery of their events to the handler.

HTTP sessions and websocket sessions live in separate tables. An HTTP session is found by the
id in its URL (the client chose it: several requests share it). A websocket session is never
looked up by anything a client sends: it is filed under an internal key made here from
`secrets`, so no URL of any transport can reach it, and clients reusing or colliding ids can
never make one session's entry stand for another's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from . import frames
from .messages import SHUTDOWN, MsgType, SockjsMessage
from .options import EndpointOptions
from .session import Session
from .stats import EndpointStats

if TYPE_CHECKING:
    from aiohttp import web

    from .directory import SessionDirectory
    from .remote import RemoteSession

log = logging.getLogger("cursorshare.sockjs")

Handler = Callable[[SockjsMessage, Session], Awaitable[None]]

#: Websocket keys start with this; it is outside the session-id alphabet of the routes.
_WEBSOCKET_KEY_PREFIX = "ws:"

__all__ = ["EndpointStats", "Handler", "SessionManager"]

#: How often waiting polls and streams are checked for a client that went away.
ABORT_CHECK_SECONDS = 1.0
#: Default of `SessionManager.shutdown_open_timeout`.
SHUTDOWN_OPEN_TIMEOUT = 5.0


class Watched(Protocol):
    """A receiving HTTP request waiting for frames."""

    def gone(self) -> bool: ...

    def wake(self) -> None: ...


def unguessable_id() -> str:
    """An id no client can predict (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


class SessionManager(Mapping[str, Session]):
    """Every live session of one endpoint, by key (read-only; counts are exact).

    Keys are HTTP session ids and internal websocket keys; only `http_session` resolves a
    client-supplied id, and only among HTTP sessions. Lifecycle events (CLOSE, CLOSED) of a
    session reach the handler in order, after its OPEN, from one task per session at a time;
    OPEN runs in a task of its session, MESSAGE is awaited by the transport that received it.
    """

    def __init__(self, name: str, handler: Handler, options: EndpointOptions) -> None:
        self.name = name
        self.handler = handler
        self.options = options
        self._http: dict[str, Session] = {}
        self._websockets: dict[str, Session] = {}
        self._keys: dict[Session, str] = {}
        self._per_address: Counter[str | None] = Counter()
        self._pending_events: dict[Session, list[SockjsMessage]] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._open_tasks: set[asyncio.Task[None]] = set()
        #: Seconds shutdown waits for handlers still on OPEN before cancelling them: a
        #: session's CLOSE and CLOSED wait for its OPEN, and shutdown waits for those.
        self.shutdown_open_timeout = SHUTDOWN_OPEN_TIMEOUT
        self._watched: set[Watched] = set()
        self._watch_timer: asyncio.TimerHandle | None = None
        self.stats = EndpointStats()
        #: Where sessions of other nodes are found (None: this node is alone, or sticky).
        self.directory: SessionDirectory | None = None
        #: True when every node stops together (the workers of one machine): requests relayed
        #: for other nodes then wait for their owners' close frames instead of being handed
        #: back to owners that are stopping too.
        self.stops_with_peers = False

    # -- Mapping ------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Session:
        table = self._websockets if key.startswith(_WEBSOCKET_KEY_PREFIX) else self._http
        return table[key]

    def __iter__(self) -> Iterator[str]:
        yield from list(self._http)
        yield from list(self._websockets)

    def __len__(self) -> int:
        return len(self._http) + len(self._websockets)

    @property
    def sessions(self) -> Mapping[str, Session]:
        """Live sessions by key (aiohttp-sockjs compatible spelling)."""
        return self

    # -- sessions -----------------------------------------------------------------------------

    def http_session(self, session_id: str) -> Session | None:
        """The HTTP session a URL names, if it is live; websocket sessions are never found."""
        return self._http.get(session_id)

    def use_directory(self, directory: SessionDirectory) -> None:
        """Serve requests for sessions of other nodes through ``directory``."""
        self.directory = directory
        directory.bind(self)

    def http_ids(self) -> list[str]:
        return list(self._http)

    async def open_http(
        self, session_id: str, *, transport: str, request: web.BaseRequest, once: bool
    ) -> Session | RemoteSession | None:
        """The session a receiving request names: this node's, another node's (through the
        directory), or a new one here. None when a new one would pass the session limits;
        raises `remote.SessionGone` when the node holding it does not answer, and
        `remote.SessionLost` when that node died. ``once``: the request takes one frame (a
        poll)."""
        session = self._http.get(session_id)
        if session is not None:
            return session
        if self.directory is not None:
            remote = await self.directory.open_remote(session_id, once=once)
            if remote is not None:
                return remote
            session = self._http.get(session_id)  # created here while the claim was out
            if session is not None:
                return session
        if not self.has_room_for(request.remote):
            if self.directory is not None:
                self.directory.released(session_id)
            return None
        return self.create_http(session_id, transport=transport, request=request)

    async def find_http(self, session_id: str) -> Session | RemoteSession | None:
        """The session a send names, on this node or (through the directory) another."""
        session = self._http.get(session_id)
        if session is None and self.directory is not None:
            return await self.directory.find_remote(session_id)
        return session

    def create_http(
        self, session_id: str, *, transport: str, request: web.BaseRequest | None
    ) -> Session:
        """A new HTTP session under the client's id (the caller checked it is free)."""
        session = Session(self, session_id, transport=transport, request=request)
        self._add(self._http, session_id, session)
        return session

    def create_websocket(self, session_id: str | None, *, request: web.BaseRequest) -> Session:
        """A new websocket session, filed under a fresh internal key.

        ``session_id`` is the id of the URL (framed websockets, which may reuse ids); the raw
        `/websocket` has none and gets an unguessable one.
        """
        key = _WEBSOCKET_KEY_PREFIX + unguessable_id()
        session = Session(
            self, session_id or unguessable_id(), transport="websocket", request=request
        )
        self._add(self._websockets, key, session)
        return session

    def _add(self, table: dict[str, Session], key: str, session: Session) -> None:
        table[key] = session
        self._keys[session] = key
        self._per_address[session.remote] += 1

    def remove(self, session: Session) -> None:
        key = self._keys.pop(session, None)
        if key is None:
            return
        table = self._websockets if key.startswith(_WEBSOCKET_KEY_PREFIX) else self._http
        if table.get(key) is session:
            del table[key]
            if self.directory is not None and table is self._http:
                self.directory.released(key)
        self._per_address[session.remote] -= 1
        if self._per_address[session.remote] <= 0:
            del self._per_address[session.remote]

    def has_room_for(self, remote: str | None) -> bool:
        """False when a new session from ``remote`` would pass a session limit."""
        options = self.options
        if (
            len(self) >= options.max_sessions
            or self._per_address[remote] >= options.max_sessions_per_address
        ):
            self.stats.sessions_refused += 1
            return False
        return True

    def broadcast(self, message: str) -> None:
        """Send one message to every open session, encoded once."""
        frame = frames.encode_messages((message,))
        for session in self._all():
            session.send_frame(frame)

    def _all(self) -> list[Session]:
        return [*self._http.values(), *self._websockets.values()]

    # -- handler ------------------------------------------------------------------------------

    async def dispatch(self, session: Session, message: SockjsMessage) -> None:
        """Await the handler; its errors are logged once, never sent to the client."""
        try:
            await self.handler(message, session)
        except Exception:
            log.exception(
                "sockjs handler failed on %s for session %s", message.type.value, session.id
            )

    def begin_open(self, session: Session) -> asyncio.Task[None]:
        """Run the handler's OPEN of ``session`` in a task of its own (`Session.connect`)."""
        task = asyncio.get_running_loop().create_task(
            self.dispatch(session, SockjsMessage(MsgType.OPEN))
        )
        self._open_tasks.add(task)
        task.add_done_callback(self._open_tasks.discard)
        return task

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
            await session.opened()  # CLOSE and CLOSED come after the handler's OPEN
            while pending:
                await self.dispatch(session, pending.pop(0))
        finally:
            del self._pending_events[session]

    # -- lifecycle ----------------------------------------------------------------------------

    async def shutdown(self, app: web.Application | None = None) -> None:
        """Close every session with the shutdown frame and let the handler see them go;
        requests relayed for other nodes' sessions end, those sessions going on there.

        Our own sessions close first: a request another node relays for one of them gets its
        close frame while that node still listens (the whole machine may be stopping at once,
        as with --workers). The hand-back's round trip then gives those frames time to leave.
        """
        for session in self._all():
            session.close(*SHUTDOWN)
        # Give receivers one loop turn to write their close frames before connections drop.
        await asyncio.sleep(0)
        if self.directory is not None:
            if self.stops_with_peers:
                await self.directory.settle(self.directory.ack_timeout)
            await self.directory.hand_back()
        for session in self._all():
            session.expire()
        if self._open_tasks:
            # An OPEN that never returns would hold its session's CLOSE and CLOSED, and so
            # the shutdown, forever; cancelled, the handler still gets them after it.
            _, late = await asyncio.wait(self._open_tasks, timeout=self.shutdown_open_timeout)
            for task in late:
                task.cancel()
        while self._event_tasks:
            await asyncio.gather(*self._event_tasks, return_exceptions=True)

    # -- clients that went away ----------------------------------------------------------------

    def watch(self, receiver: Watched) -> None:
        """Check ``receiver``'s client every second while it waits. aiohttp cancels the handler
        of a lost connection only with ``handler_cancellation=True``; a program run with plain
        ``web.run_app(app)`` (every aiohttp-sockjs program) would otherwise notice an aborted
        poll or stream only at its next write (a heartbeat, 25 s later)."""
        self._watched.add(receiver)
        if self._watch_timer is None:
            loop = asyncio.get_running_loop()
            self._watch_timer = loop.call_later(ABORT_CHECK_SECONDS, self._check_watched)

    def unwatch(self, receiver: Watched) -> None:
        self._watched.discard(receiver)

    def _check_watched(self) -> None:
        self._watch_timer = None
        for receiver in [r for r in self._watched if r.gone()]:
            receiver.wake()  # it sees the lost connection and ends as an abort (1002)
        if self._watched:
            loop = asyncio.get_running_loop()
            self._watch_timer = loop.call_later(ABORT_CHECK_SECONDS, self._check_watched)

    def count_by_transport(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for session in self._all():
            counts[session.transport] = counts.get(session.transport, 0) + 1
        return counts
