"""Sessions held by another node: both ends of a request that reached the wrong node.

When a request names a session another node holds (no sticky routing in front), the node that
received it serves it through that owner:

- a **send** (`xhr_send`, `jsonp_send`) is forwarded, and answered once the owner has handed
  its messages to the handler (`RemoteSession.deliver`);
- a **receiving request** (a poll or a stream) attaches a `Relay` to the owner's session, as a
  local request would attach itself. The owner's session keeps its timers, its queue and its
  one-receiver rule; the relay hands its frames to the requesting node one at a time, when
  that node asks (``pull``), so a frame is taken from the session only when the request that
  will write it is still there, and a streaming response that reaches its response_limit
  leaves the rest queued for the next one. `RemoteSession` is that request's view of the
  session: the same `connect` / `next_frame` / `detach` its receiver uses on a local one.

How the nodes talk is the `Courier`'s business (`directory.SessionDirectory`); nothing here
knows what carries the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

from .frames import HEARTBEAT
from .messages import CloseReason
from .receiver import Receiver
from .session import Session

#: The JSON head of a message between nodes (its kind, session id, sequence numbers, ...).
Header = dict[str, Any]


class SessionGone(Exception):
    """The session named is held by no live node (any more)."""


class SessionLost(SessionGone):
    """The session named was held by a node that died: it ended with that node."""


class Courier(Protocol):
    """Messages between nodes, for one endpoint (implemented by `SessionDirectory`)."""

    def post(self, peer: str, header: Header, body: bytes = b"") -> None:
        """Send a message to ``peer``; messages to one peer arrive in the order posted."""

    async def ask(self, peer: str, header: Header, body: bytes = b"") -> Header:
        """Send a request and wait for its answer (raises `SessionGone` when none comes)."""

    def forget(self, rid: str) -> None:
        """The relay or remote session ``rid`` is over."""


class RemoteSession:
    """A session held by node ``peer``, as a request on this node sees it."""

    def __init__(self, courier: Courier, session_id: str, peer: str, rid: str) -> None:
        self.id = session_id
        self.peer = peer
        self.rid = rid
        self._courier = courier
        self._frames: deque[bytes] = deque()
        self._receiver: Receiver | None = None
        self._attached = False
        #: A ``pull`` is out (attaching counts as one): the owner will send one frame.
        self._pulling = False
        #: This node is stopping: the owner took the relay back (`leave`).
        self._left = False

    def __repr__(self) -> str:
        return f"<RemoteSession {self.id!r} on {self.peer}>"

    # -- sending ----------------------------------------------------------------------------

    async def deliver(self, payload: bytes) -> None:
        """Forward a send's body; returns once the owner's handler has had its messages."""
        answer = await self._courier.ask(self.peer, {"op": "send", "sid": self.id}, payload)
        if not answer.get("ok"):
            raise SessionGone(self.id)

    # -- receiving (what `transports.base.HttpReceiver` calls) -------------------------------

    async def attach(self, *, once: bool) -> str:
        """Ask the owner to attach a relay: ``attached``, ``busy`` (another receiver is on) or
        ``gone``. ``once``: a poll, which takes one frame."""
        header = {"op": "attach", "sid": self.id, "rid": self.rid, "once": once}
        answer = await self._courier.ask(self.peer, header)
        outcome = str(answer.get("op"))
        self._attached = outcome == "attached"
        self._pulling = self._attached
        return outcome

    @property
    def attached(self) -> bool:
        return self._attached

    async def connect(self, receiver: Receiver) -> bool:
        """False when the owner found another receiver attached (the client gets 2010)."""
        if not self._attached:
            return False
        self._receiver = receiver
        if self._frames:
            receiver.wake()
        return True

    @property
    def handed_back(self) -> bool:
        """True once the response must end: the owner took the relay back, and every frame
        it sent before is written."""
        return self._left and not self._frames

    def next_frame(self) -> bytes | None:
        if self._frames:
            return self._frames.popleft()
        if self._left:
            # A heartbeat: a poll needs a frame, and a client reopens after one.
            return HEARTBEAT
        if not self._pulling and self._attached:
            # The previous frame is written: only now may the owner take the next one.
            self._pulling = True
            self._courier.post(self.peer, {"op": "pull", "rid": self.rid})
        return None

    def detach(self, receiver: Receiver, *, interrupted: bool = False) -> None:
        if self._receiver is not receiver or not self._attached:
            return
        self._receiver = None
        self._attached = False
        self._courier.forget(self.rid)
        self._courier.post(self.peer, {"op": "abort" if interrupted else "done", "rid": self.rid})

    async def leave(self) -> None:
        """This node is stopping: have the owner take its relay back, then end the response
        with what the owner sent before that (its answer comes after those frames)."""
        if not self._attached:
            return
        try:
            await self._courier.ask(self.peer, {"op": "leave", "sid": self.id, "rid": self.rid})
        except SessionGone:
            self.on_lost()
            return
        self.on_released()

    # -- from the owner ---------------------------------------------------------------------

    def on_released(self) -> None:
        """The relay is over but the session lives (this node is stopping, or one node took
        the other for dead while it was only slow): end the client's response cleanly, with
        what the owner sent before; the client's next request finds the session anew."""
        if not self._attached:
            return
        self._attached = False
        self._left = True
        self._courier.forget(self.rid)
        if self._receiver is not None:
            self._receiver.wake()

    def on_frame(self, frame: bytes) -> None:
        self._pulling = False
        self._frames.append(frame)
        if self._receiver is not None:
            self._receiver.wake()

    def on_lost(self) -> None:
        """The owner dropped the connection, or died: drop the client's request too."""
        receiver = self._receiver
        self._attached = False
        self._courier.forget(self.rid)
        if receiver is not None:
            receiver.abort()


class Relay:
    """The owner's end: a receiver attached to a local session for a request on ``peer``."""

    ends_session = False

    def __init__(
        self,
        courier: Courier,
        session: Session,
        peer: str,
        rid: str,
        *,
        once: bool,
        patience: float,
    ) -> None:
        self.session = session
        self.peer = peer
        self.rid = rid
        self.once = once
        self.patience = patience
        self._courier = courier
        #: Set while a frame is on its way and the requester has not said what next (another
        #: pull, or the end of its response); see `settled`.
        self._in_doubt: asyncio.Future[None] | None = None
        #: Frames ``peer`` asked for and has not had yet (attaching asks for the first).
        self._wanted = 1
        self._in_flight = 0
        self._flush_scheduled = False

    # -- Receiver -----------------------------------------------------------------------------

    def wake(self) -> None:
        # Sends of one loop turn leave together, as with a local receiver's task.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def write_buffer_size(self) -> int:
        return self._in_flight

    def abort(self) -> None:
        self._courier.post(self.peer, {"op": "drop", "rid": self.rid})
        asyncio.get_running_loop().call_soon(self.ended, True)

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        if tell:
            self.wake()
        else:
            self.abort()

    # -- from the requesting node -------------------------------------------------------------

    def pull(self) -> None:
        self._wanted = 1
        self._in_flight = 0
        self._settle()
        self._flush()

    def ended(self, interrupted: bool) -> None:
        self._settle()
        self._courier.forget(self.rid)
        self.session.detach(self, interrupted=interrupted)

    async def settled(self) -> None:
        """Wait until the requester has said whether its response goes on.

        A client opens its next request as soon as a response ends; through another node,
        that request can reach this node before the word that this one ended. Waiting for it
        (at most ``patience``) keeps that client from being told `2010`."""
        if self._in_doubt is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._in_doubt), self.patience)

    def _settle(self) -> None:
        if self._in_doubt is not None and not self._in_doubt.done():
            self._in_doubt.set_result(None)
        self._in_doubt = None

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wanted or not self.session.serves(self):
            return
        frame = self.session.next_frame()
        if frame is None:
            return
        self._wanted = 0
        self._in_flight = len(frame)
        self._courier.post(self.peer, {"op": "frame", "rid": self.rid}, frame)
        if self.once:
            # A poll answers one frame: its end is known now, no need to hear it.
            self.ended(False)
        else:
            self._in_doubt = asyncio.get_running_loop().create_future()
