"""The session state machine: the one place that drives a session's lifecycle.

A session outlives the HTTP requests that carry it. Receiving requests (a poll, a stream, a
websocket) `connect` a `Receiver`; the session hands it frames (`next_frame`) and wakes it
when there is something to send. At most one receiver is attached at a time: a second one is
told `c[2010,"Another connection still open"]` and the first keeps working. Transports only
report what happened (`connect`, `deliver`, `charge_frames`, `fail`, `detach`); the session
decides the state, the frames and the handler's events.

Lifecycle::

    NEW --first receiver--> OPEN --close()/fail()/abort--> CLOSING --disconnect_delay--> CLOSED
                              \\--------------no receiver for disconnect_delay-----------^

Timers are per session and matter only while useful: the heartbeat while a receiver is
attached, the expiry while none is. They are re-armed lazily: a poll only moves two deadlines,
and a timer that fires early (or finds it no longer applies) re-arms itself once or lapses, so
a polling session costs about one timer per `disconnect_delay`, not four operations per poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from . import frames
from .messages import (
    GO_AWAY,
    INTERRUPTED,
    RATE_LIMITED,
    SLOW_CONSUMER,
    TIMED_OUT,
    CloseReason,
    MsgType,
    SessionState,
    SockjsMessage,
)
from .ratelimit import ABUSE_SECONDS as _DEFAULT_ABUSE_SECONDS
from .ratelimit import RateLimiter, Verdict
from .receiver import InDoubt, Receiver

if TYPE_CHECKING:
    from aiohttp import web

    from .options import EndpointOptions
    from .stats import EndpointStats

log = logging.getLogger("cursorshare.sockjs")

#: Window of the rate limit's abuse rule (read when a session opens; tests shorten it).
ABUSE_SECONDS = _DEFAULT_ABUSE_SECONDS


class SessionOwner(Protocol):
    """What a session needs of its endpoint (implemented by `SessionManager`)."""

    @property
    def options(self) -> EndpointOptions: ...

    @property
    def stats(self) -> EndpointStats: ...

    async def dispatch(self, session: Session, message: SockjsMessage) -> None:
        """Await the handler on one event of ``session``."""

    def begin_open(self, session: Session) -> asyncio.Task[None]:
        """Run the handler's OPEN of ``session`` in a task of its own."""

    def emit(self, session: Session, message: SockjsMessage) -> None:
        """Queue a lifecycle event for the handler, after the session's earlier ones."""

    def remove(self, session: Session) -> None:
        """Forget ``session`` (it is closed)."""


class Session:
    """One SockJS session, as the application sees it."""

    __slots__ = (
        "_attached_at",
        "_budget",
        "_close_frame",
        "_control",
        "_detached_at",
        "_expiry",
        "_heartbeat",
        "_opening",
        "_queue",
        "_queued_bytes",
        "_receiver",
        "_request",
        "close_reason",
        "delivered",
        "id",
        "manager",
        "query",
        "remote",
        "state",
        "transport",
    )

    def __init__(
        self,
        manager: SessionOwner,
        session_id: str,
        *,
        transport: str,
        request: web.BaseRequest | None,
    ) -> None:
        self.id = session_id
        self.manager = manager
        #: The transport of the request that opened the session.
        self.transport = transport
        self._request = request
        #: The client's address (as the server saw it; behind a proxy, the proxy's).
        self.remote: str | None = request.remote if request is not None else None
        #: Query parameters of the request that opened the session.
        self.query: Mapping[str, str] = request.query if request is not None else {}
        self.state = SessionState.NEW
        self.close_reason: CloseReason | None = None
        #: A receiver took a message frame: the client may have read what the app sent.
        self.delivered = False
        self._control: list[bytes] = []  # `o` and `h`, sent before queued messages
        self._queue: list[bytes] = []  # encoded message frames `a[...]`
        self._queued_bytes = 0
        self._close_frame: bytes | None = None
        self._receiver: Receiver | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        #: The handler's OPEN while it runs: what the client sends meanwhile waits for it.
        self._opening: asyncio.Task[None] | None = None
        #: Loop time of the last attach (or heartbeat) and of the last detach: the
        #: heartbeat is due `heartbeat_delay` after the first, the expiry `disconnect_delay`
        #: after the second.
        self._attached_at = 0.0
        self._detached_at = 0.0
        self._budget = RateLimiter(
            manager.options.max_messages_per_second,
            abuse_seconds=ABUSE_SECONDS,
            clock=asyncio.get_running_loop().time,
        )

    def __repr__(self) -> str:
        return f"<Session {self.id!r} {self.transport} {self.state.value}>"

    @property
    def request(self) -> web.BaseRequest | None:
        """The aiohttp request that opened the session (aiohttp-sockjs's `session.request`).

        None for a session the application created before any request named it.
        """
        return self._request

    @property
    def receiving(self) -> bool:
        """True while a receiving connection (poll, stream or websocket) is attached."""
        return self._receiver is not None

    def serves(self, receiver: Receiver) -> bool:
        """True while ``receiver`` is the attached receiving connection."""
        return self._receiver is receiver

    # -- the application's side -------------------------------------------------------------

    def send(self, message: str) -> None:
        """Queue one message for the client."""
        self.send_frame(frames.encode_messages((message,)))

    def send_many(self, messages: list[str]) -> None:
        """Queue several messages; they reach the client in one frame when it is reading."""
        if messages:
            self.send_frame(frames.encode_messages(messages))

    def send_frame(self, frame: bytes) -> None:
        """Queue a message frame made by `frames.encode_messages` (shared by many sessions)."""
        if self.state is not SessionState.OPEN:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self.backlog > self.manager.options.max_queue_bytes:
            self.close(*SLOW_CONSUMER)
            return
        if self._receiver is not None:
            self._receiver.wake()

    def close(self, code: int = GO_AWAY.code, reason: str = GO_AWAY.reason) -> None:
        """Close the session; the client gets ``c[code,"reason"]`` now and on later requests."""
        self._end(CloseReason(code, reason), failed=False, tell=True)

    @property
    def backlog(self) -> int:
        """Bytes sent to this session that the client has not taken yet."""
        receiver = self._receiver
        buffered = receiver.write_buffer_size() if receiver is not None else 0
        return self._queued_bytes + buffered

    # -- the transports' side ---------------------------------------------------------------

    async def connect(self, receiver: Receiver) -> bool:
        """Attach a receiving connection; False when another one is attached already.

        The first receiver opens the session: it has the `o` frame at once, while the handler
        may still be on OPEN (an app's OPEN may wait seconds on a backend, and sockjs-client
        gives up on a transport whose `o` is late). MESSAGE, CLOSE and CLOSED wait for it.
        """
        current = self._receiver
        if isinstance(current, InDoubt):
            await current.settled()  # a relayed response that may just have ended
        if self._receiver is not None:
            return False
        # A pending expiry timer stays: it lapses when it fires and finds a receiver.
        self._receiver = receiver
        opening = self.state is SessionState.NEW
        if opening:
            self.state = SessionState.OPEN
            self._control.append(frames.OPEN)
        if self.state is SessionState.OPEN:
            self._arm_heartbeat()
        if opening:
            opening_task = self.manager.begin_open(self)
            opening_task.add_done_callback(self._opened_now)
            self._opening = opening_task
        return True

    async def opened(self) -> None:
        """Returns once the handler is done with OPEN (at once if it has never been due)."""
        opening = self._opening
        if opening is not None:
            # `wait`, not `await opening`: a cancelled waiter must not cancel the handler.
            await asyncio.wait((opening,))

    def _opened_now(self, _task: asyncio.Task[None]) -> None:
        self._opening = None

    async def deliver(self, messages: Iterable[str]) -> None:
        """Hand the client's messages to the handler in order, each charged to its budget.

        A message over budget is dropped; a flood closes the session (3009).
        """
        if self._opening is not None:  # (no coroutine per send once open: the hot path)
            await self.opened()
        stats = self.manager.stats
        for message in messages:
            if self.state is not SessionState.OPEN:
                return
            stats.messages_in += 1
            verdict = self._budget.admit()
            if verdict is Verdict.ADMIT:
                await self.manager.dispatch(self, SockjsMessage(MsgType.MESSAGE, message))
                continue
            stats.messages_dropped += 1
            if verdict is Verdict.ABUSE:
                self.fail(RATE_LIMITED)

    def charge_frames(self, count: int) -> None:
        """Websocket frames that carried no message still cost their sender a unit each."""
        if self.state is not SessionState.OPEN:
            return
        self.manager.stats.frames_charged += count
        if self._budget.admit(count) is Verdict.ABUSE:
            self.fail(RATE_LIMITED)

    def fail(self, reason: CloseReason, *, tell: bool = True) -> None:
        """Close the session of a misbehaving client and drop its connection at once.

        As RFC 6455 §7.1.7 fails a connection: no more of its input is processed and its
        close reply is not awaited. With ``tell`` the client gets ``c[code,"reason"]`` first.
        """
        self._end(reason, failed=True, tell=tell)

    def detach(self, receiver: Receiver, *, interrupted: bool = False) -> None:
        """The receiving connection ended; ``interrupted`` when the client went away mid-way.

        A connection that carries the whole session (a websocket) ending takes the session
        with it: closed 1002 unless it was closing already, and forgotten at once.
        """
        if self._receiver is not receiver:
            return
        self._receiver = None
        # A pending heartbeat timer stays: it lapses when it fires and finds no receiver.
        if interrupted or receiver.ends_session:
            self.close(*INTERRUPTED)
        if receiver.ends_session:
            self.expire()
        else:
            self._arm_expiry()

    def next_frame(self) -> bytes | None:
        """The next frame for the attached receiver, or None when there is nothing to send.

        Queued messages go out merged into one frame, ahead of the close frame.
        """
        if self._control:
            return self._control.pop(0)
        if self._queue:
            frame = frames.merge_message_frames(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self.delivered = True
            return frame
        return self._close_frame

    def expire(self) -> None:
        """Forget the session: the handler gets CLOSE (if not yet) and CLOSED."""
        if self.state is SessionState.CLOSED:
            return
        if self.state is SessionState.OPEN:
            self.close_reason = TIMED_OUT
            self.manager.stats.closes[TIMED_OUT.code] += 1
            self.manager.emit(self, SockjsMessage(MsgType.CLOSE, TIMED_OUT))
        self.state = SessionState.CLOSED
        for timer in (self._heartbeat, self._expiry):
            if timer is not None:
                timer.cancel()
        self._heartbeat = self._expiry = None
        self._queue.clear()
        self._queued_bytes = 0
        self.manager.remove(self)
        self.manager.emit(self, SockjsMessage(MsgType.CLOSED, self.close_reason))

    # -- closing ------------------------------------------------------------------------------

    def _end(self, reason: CloseReason, *, failed: bool, tell: bool) -> None:
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        was_new = self.state is SessionState.NEW
        self.state = SessionState.CLOSING
        self.close_reason = reason
        self.manager.stats.closes[reason.code] += 1
        # Later requests of an HTTP session get the close frame whatever this one got.
        self._close_frame = frames.close_frame(*reason)
        if not was_new:
            self.manager.emit(self, SockjsMessage(MsgType.CLOSE, reason))
        receiver = self._receiver
        if receiver is not None:
            if reason.code == SLOW_CONSUMER.code:
                # It is not reading: a close frame would only queue behind what it never read.
                receiver.abort()
            elif failed:
                if not tell:
                    self._queue.clear()
                    self._queued_bytes = 0
                receiver.fail(reason, tell=tell)
            else:
                receiver.wake()
        elif self._expiry is None:
            self._arm_expiry()

    # -- timers -----------------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._attached_at = now = loop.time()
        if self._heartbeat is None:
            self._heartbeat = loop.call_at(
                now + self.manager.options.heartbeat_delay, self._heartbeat_due
            )

    def _heartbeat_due(self) -> None:
        self._heartbeat = None
        if self._receiver is None or self.state is not SessionState.OPEN:
            return  # the next receiver arms it again
        loop = asyncio.get_running_loop()
        due = self._attached_at + self.manager.options.heartbeat_delay
        if loop.time() < due:  # a receiver attached since this timer was armed
            self._heartbeat = loop.call_at(due, self._heartbeat_due)
            return
        self._control.append(frames.HEARTBEAT)
        self._receiver.wake()
        self._arm_heartbeat()

    def _arm_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        self._detached_at = now = loop.time()
        if self._expiry is None:
            self._expiry = loop.call_at(
                now + self.manager.options.disconnect_delay, self._expiry_due
            )

    def _expiry_due(self) -> None:
        self._expiry = None
        if self._receiver is not None:
            return  # the receiver's detach arms it again
        loop = asyncio.get_running_loop()
        due = self._detached_at + self.manager.options.disconnect_delay
        if loop.time() < due:  # a receiver came and went since this timer was armed
            self._expiry = loop.call_at(due, self._expiry_due)
            return
        self.expire()
