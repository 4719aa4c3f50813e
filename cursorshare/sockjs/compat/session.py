"""aiohttp-sockjs's Session and SessionManager, as views over our sessions and manager.

Our core session keeps `__slots__` and our manager keys websocket sessions apart (their ids
may repeat); here each live session gets one plain wrapper object for its whole life, so
programs can keep attributes on it, and `get` finds websocket sessions by their id.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, TypeVar, overload

from .. import frames
from ..manager import SessionManager as CoreManager
from ..messages import INTERRUPTED
from ..messages import MsgType as CoreMsgType
from ..messages import SessionState as CoreState
from ..messages import SockjsMessage as CoreMessage
from ..session import Session as CoreSession
from .protocol import CLOSED_MESSAGE, OPEN_MESSAGE, MsgType, SessionState, SockjsMessage

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("cursorshare.sockjs")

#: A handler of either aiohttp-sockjs generation: `(manager, session, msg)` (0.12 on) or
#: `(msg, session)` (up to 0.11), a coroutine function or a plain one.
AnyHandler = Callable[..., object]
_T = TypeVar("_T")


class _Missing:
    pass


_MISSING: Final = _Missing()


def _takes_msg_first(handler: AnyHandler) -> bool:
    """True for the old `(msg, session)` handlers: exactly two required positional parameters."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    has_var = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return len(positional) == 2 and not has_var


class Session:
    """One session as aiohttp-sockjs programs see it; ``core`` is ours underneath."""

    def __init__(self, manager: SessionManager, core: CoreSession) -> None:
        self.manager = manager
        self.core = core
        self.heartbeat_delay = manager.heartbeat_delay
        self.disconnect_delay = manager.disconnect_delay
        #: What interrupted the session, or made its OPEN handler fail.
        self.exception: BaseException | None = None
        self._opened = False
        self._failed_open = False

    def __str__(self) -> str:
        flags = [f"id={self.id!r}", self.state.name.lower()]
        if self.acquired:
            flags.append("acquired")
        return " ".join(flags)

    @property
    def id(self) -> str:
        return self.core.id

    @property
    def state(self) -> SessionState:
        return SessionState[self.core.state.name]

    @property
    def request(self) -> web.BaseRequest | None:
        """The request that opened the session."""
        return self.core.request

    @property
    def acquired(self) -> bool:
        """True while a receiving connection is attached."""
        return self.core.receiving

    @property
    def expired(self) -> bool:
        return self.core.state is CoreState.CLOSED

    @property
    def interrupted(self) -> bool:
        """The client went away mid-request, or the OPEN handler failed."""
        return self._failed_open or self.core.close_reason == INTERRUPTED

    def send(self, msg: str) -> bool:
        """Queue a message; False (nothing sent) when the session is not open."""
        if not isinstance(msg, str):
            raise TypeError("String is required")
        if self.core.state is not CoreState.OPEN:
            return False
        self.core.send(msg)
        return True

    def send_frame(self, frm: str | bytes) -> None:
        """Queue a frame made beforehand (``a[...]``), as broadcasts do."""
        self.core.send_frame(frm.encode() if isinstance(frm, str) else frm)

    def close(self, code: int = 3000, reason: str = "Go away!") -> None:
        self.core.close(code, reason)

    def expire(self) -> None:
        """Forget the session now (the handler gets CLOSE and CLOSED)."""
        self.core.expire()


class SessionManager:
    """aiohttp-sockjs's manager of one endpoint, over ours (bound when the endpoint is added)."""

    def __init__(
        self,
        name: str,
        app: web.Application,
        handler: AnyHandler,
        heartbeat_delay: float = 25,
        disconnect_delay: float = 5,
        debug: bool = False,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        self.name = name
        self.app = app
        self.handler = handler
        self.heartbeat_delay = heartbeat_delay
        self.disconnect_delay = disconnect_delay
        self.debug = debug
        self.started = False
        self._msg_first = _takes_msg_first(handler)
        self._core: CoreManager | None = None
        self._wrappers: dict[CoreSession, Session] = {}

    def __repr__(self) -> str:
        return f"<compat SessionManager {self.name!r}>"

    def bind(self, core: CoreManager) -> None:
        """Attach to the endpoint add_endpoint mounted for it."""
        self._core = core

    @property
    def core(self) -> CoreManager:
        if self._core is None:
            raise RuntimeError(f"{self!r} is not mounted: pass it to add_endpoint first")
        return self._core

    # -- sessions -----------------------------------------------------------------------------

    def _wrap(self, core: CoreSession) -> Session:
        session = self._wrappers.get(core)
        if session is None:
            session = self._wrappers[core] = Session(self, core)
        return session

    @property
    def sessions(self) -> dict[str, Session]:
        """Live sessions by id (a websocket session by its id too)."""
        return {core.id: self._wrap(core) for core in self.core.values()}

    @property
    def acquired(self) -> dict[str, bool]:
        return {sid: True for sid, session in self.sessions.items() if session.acquired}

    def is_acquired(self, session: Session) -> bool:
        return session.acquired

    def active_sessions(self) -> Iterator[Session]:
        for session in list(self.sessions.values()):
            if not session.expired:
                yield session

    @overload
    def get(self, session_id: str, create: bool = ...) -> Session: ...
    @overload
    def get(self, session_id: str, create: bool = ..., *, default: _T) -> Session | _T: ...

    def get(
        self, session_id: str, create: bool = False, default: object = _MISSING
    ) -> Session | object:
        """The live session ``session_id``; with ``create`` a new one a transport then opens.

        KeyError when there is none, unless ``default`` is given.
        """
        session = self.sessions.get(session_id)
        if session is not None:
            return session
        if create:
            core = self.core.create_http(session_id, transport="", request=None)
            # Nothing may ever open it: forget it after disconnect_delay, as the reference does.
            asyncio.get_running_loop().call_later(
                self.core.options.disconnect_delay, self._forget_unopened, core
            )
            return self._wrap(core)
        if default is not _MISSING:
            return default
        raise KeyError(session_id)

    def _forget_unopened(self, core: CoreSession) -> None:
        if core.state is CoreState.NEW and not core.receiving:
            core.expire()

    def broadcast(self, message: str, exclude_session_ids: set[str] | None = None) -> None:
        """Send one message to every open session but the excluded ids, encoded once."""
        if not exclude_session_ids:
            self.core.broadcast(message)
            return
        frame = frames.encode_messages((message,))
        for core in list(self.core.values()):
            if core.id not in exclude_session_ids:
                core.send_frame(frame)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Nothing to start: our sessions carry their own timers. Kept for old programs."""
        self.started = True

    async def stop(self, _app: web.Application | None = None) -> None:
        self.started = False
        await self.clear()

    async def clear(self) -> None:
        """Close and forget every session; the handler sees each one go."""
        await self.core.shutdown()

    # -- events from our endpoint -------------------------------------------------------------

    async def deliver(self, event: CoreMessage, core: CoreSession) -> None:
        """Our endpoint's handler: hand its events to the program in aiohttp-sockjs's terms."""
        session = self._wrap(core)
        if event.type is CoreMsgType.OPEN:
            session._opened = True
            try:
                await self._call(session, OPEN_MESSAGE)
            except Exception as exc:
                # As aiohttp-sockjs does: a session whose OPEN handler failed is closed.
                log.exception("sockjs OPEN handler failed for session %s", core.id)
                session.exception = exc
                session._failed_open = True
                core.close(3000, "Internal error")
        elif event.type is CoreMsgType.MESSAGE:
            if self.debug:
                log.debug("incoming message: %s, %.200s", core.id, event.data)
            await self._call(session, SockjsMessage(MsgType.MESSAGE, str(event.data)))
        elif event.type is CoreMsgType.CLOSE:
            if core.close_reason == INTERRUPTED and session.exception is None:
                session.exception = ConnectionResetError(INTERRUPTED.reason)
            data = session.exception if session.interrupted else None
            if session._opened:
                await self._call(session, SockjsMessage(MsgType.CLOSE, data))
        elif event.type is CoreMsgType.CLOSED:
            try:
                if session._opened:
                    await self._call(session, CLOSED_MESSAGE)
            finally:
                self._wrappers.pop(core, None)

    async def _call(self, session: Session, msg: SockjsMessage) -> None:
        args = (msg, session) if self._msg_first else (self, session, msg)
        result = self.handler(*args)
        if inspect.isawaitable(result):
            await result
