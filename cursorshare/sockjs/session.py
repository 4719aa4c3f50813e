"""The session state machine: one file, every transport drives it the same way.

A session outlives the HTTP requests that carry it. Receiving requests (a poll, a stream, a
websocket) attach a `Receiver`; the session hands it frames (`next_frame`) and wakes it when
there is something to send. At most one receiver is attached at a time: a second one is told
`c[2010,"Another connection still open"]` and the first keeps working.

Lifecycle::

    NEW --first receiver--> OPEN --close()/abort--> CLOSING --disconnect_delay--> CLOSED
                              \\--------------no receiver for disconnect_delay-----^

Timers are per session and armed only while useful: the heartbeat while a receiver is
attached, the expiry while none is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
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

if TYPE_CHECKING:
    from aiohttp import web

    from .manager import SessionManager

log = logging.getLogger("cursorshare.sockjs")

#: Window of the rate limit's abuse rule: dropping more than half this window's worth of
#: the allowed rate within it closes the session.
ABUSE_SECONDS = 10.0


class Receiver(Protocol):
    """A receiving connection of some transport, attached to a session."""

    #: Websocket sessions end with their connection; HTTP ones wait disconnect_delay for the
    #: client's next request.
    ends_session: bool

    def wake(self) -> None:
        """The session has a frame for this receiver (take it with `Session.next_frame`)."""

    def write_buffer_size(self) -> int:
        """Bytes written but not yet sent to the client."""

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all."""


class Session:
    """One SockJS session, as the application sees it."""

    __slots__ = (
        "_abuse_drops",
        "_abuse_since",
        "_close_frame",
        "_control",
        "_expiry",
        "_heartbeat",
        "_queue",
        "_queued_bytes",
        "_receiver",
        "_request",
        "_tokens",
        "_tokens_at",
        "close_reason",
        "id",
        "manager",
        "query",
        "remote",
        "state",
        "transport",
    )

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        *,
        transport: str,
        remote: str | None = None,
        query: Mapping[str, str] | None = None,
        request: web.Request | None = None,
    ) -> None:
        self.id = session_id
        self._request = request
        self.manager = manager
        #: The transport of the request that opened the session.
        self.transport = transport
        #: The client's address (as the server saw it; behind a proxy, the proxy's).
        self.remote = remote
        #: Query parameters of the request that opened the session.
        self.query: Mapping[str, str] = query or {}
        self.state = SessionState.NEW
        self.close_reason: CloseReason | None = None
        self._control: list[bytes] = []  # `o` and `h`, sent before queued messages
        self._queue: list[bytes] = []  # encoded message frames `a[...]`
        self._queued_bytes = 0
        self._close_frame: bytes | None = None
        self._receiver: Receiver | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        # Token bucket of the inbound rate limit, full at start.
        self._tokens = 2 * manager.options.max_messages_per_second
        self._tokens_at = 0.0
        self._abuse_since = 0.0
        self._abuse_drops = 0

    def __repr__(self) -> str:
        return f"<Session {self.id!r} {self.transport} {self.state.value}>"

    @property
    def request(self) -> web.Request | None:
        """The aiohttp request that opened the session (None for one made without a request)."""
        return self._request

    @property
    def receiving(self) -> bool:
        """True while a receiving connection (poll, stream or websocket) is attached."""
        return self._receiver is not None

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
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        was_new = self.state is SessionState.NEW
        self.state = SessionState.CLOSING
        self.close_reason = CloseReason(code, reason)
        self.manager.stats.closes[code] += 1
        self._close_frame = frames.close_frame(code, reason)
        if not was_new:
            self.manager.emit(self, SockjsMessage(MsgType.CLOSE, self.close_reason))
        if self._receiver is not None:
            if code == SLOW_CONSUMER.code:
                # It is not reading: a close frame would only queue behind what it never read.
                self._receiver.abort()
            else:
                self._receiver.wake()
        elif self._expiry is None:
            self._arm_expiry()

    def admit_message(self) -> bool:
        """Take a token for one incoming message; False (drop it) when the bucket is empty.

        A session still dropping over ABUSE_SECONDS' worth of its rate within that window is
        closed (3009): it is not a cursor, it is a flood.
        """
        rate = self.manager.options.max_messages_per_second
        now = asyncio.get_running_loop().time()
        self._tokens = min(2 * rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        if now - self._abuse_since > ABUSE_SECONDS:
            self._abuse_since = now
            self._abuse_drops = 0
        self._abuse_drops += 1
        if self._abuse_drops > rate * ABUSE_SECONDS / 2:
            self.close(*RATE_LIMITED)
        return False

    @property
    def backlog(self) -> int:
        """Bytes sent to this session that the client has not taken yet."""
        receiver = self._receiver
        buffered = receiver.write_buffer_size() if receiver is not None else 0
        return self._queued_bytes + buffered

    # -- the transports' side ---------------------------------------------------------------

    def attach(self, receiver: Receiver) -> bool:
        """Attach a receiving connection; False when another one is attached already."""
        if self._receiver is not None:
            return False
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._receiver = receiver
        if self.state is SessionState.NEW:
            self.state = SessionState.OPEN
            self._control.append(frames.OPEN)
        if self.state is SessionState.OPEN:
            self._arm_heartbeat()
        return True

    def detach(self, receiver: Receiver, *, interrupted: bool = False) -> None:
        """The receiving connection ended; ``interrupted`` when the client went away mid-way."""
        if self._receiver is not receiver:
            return
        self._receiver = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if interrupted:
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

    # -- timers -----------------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(
            self.manager.options.heartbeat_delay, self._send_heartbeat
        )

    def _send_heartbeat(self) -> None:
        if self._receiver is None or self.state is not SessionState.OPEN:
            self._heartbeat = None
            return
        self._control.append(frames.HEARTBEAT)
        self._receiver.wake()
        self._arm_heartbeat()

    def _arm_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self.manager.options.disconnect_delay, self.expire)
