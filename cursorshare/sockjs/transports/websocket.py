"""WebSocket: SockJS frames over `/{server}/{session}/websocket`, and the raw `/websocket`.

The session lives as long as the connection; session ids may be reused (each connection is
its own session, filed under an internal key). Frames are written straight to the socket as
they are produced, so a broadcast never waits for a slow reader: what the client has not read
shows up as the session's backlog, and past max_queue_bytes the session is closed as a slow
consumer.

Every frame the client sends costs it: messages where they are delivered, everything else
(empty frames, fragments, pings, pongs) through the `FrameMeter`. Closing follows RFC 6455
§7: after its close frame the server waits up to websocket_close_timeout for the client's
reply, then closes the TCP connection first. A misbehaving client (broken framing, a flood)
is failed instead: a close frame, and the connection dropped at once.
"""

from __future__ import annotations

import asyncio
import struct
from typing import cast

import orjson
from aiohttp import WebSocketError, WSCloseCode, WSMsgType, hdrs, web

from .. import frames
from ..http import error
from ..manager import SessionManager
from ..messages import (
    BROKEN_FRAMING,
    MESSAGE_TOO_BIG,
    TOO_MANY_SESSIONS,
    CloseReason,
)
from ..session import Session
from .base import Route
from .framemeter import FrameMeter

_CLOSE = ord("c")
_TEXT = 0x81  # FIN + text opcode; we never fragment and never compress
_CLOSE_OPCODE = 0x88  # FIN + close
_MAX_CLOSE_REASON = 123  # control frames carry at most 125 bytes, 2 of them the code


def _frame_header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class WebSocketReceiver:
    """Writes SockJS frames as websocket text frames, synchronously."""

    ends_session = True

    def __init__(
        self,
        session: Session,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        close_timeout: float,
        meter: FrameMeter | None = None,
    ) -> None:
        self._session = session
        self._meter = meter
        self._ws = ws
        # aiohttp's writer is async (it may wait for the socket to drain); the fan-out must
        # not, so complete frames go to the transport directly. Compression is off on these
        # connections, which keeps each frame one plain write.
        self._transport = request.transport
        self._close_timeout = close_timeout
        self._closing = False
        #: Our close frame is out: the connection ends at the client's reply or the deadline.
        self._close_sent = False
        self._deadline: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        while not self._closing and (frame := self._session.next_frame()) is not None:
            self.write(frame)
            if frame[0] == _CLOSE:
                self._closing = True
                self._close_sent = self._write_close(self.close_code())
                if self._close_sent:
                    # The receive loop goes on until the client's close reply arrives.
                    loop = asyncio.get_running_loop()
                    self._deadline = loop.call_later(self._close_timeout, self.abort)

    def write(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_frame_header(_TEXT, len(frame)) + frame)

    def close_code(self) -> CloseReason:
        """The websocket close code and reason that follow the session's close frame."""
        return CloseReason(WSCloseCode.OK, "")

    def _write_close(self, reason: CloseReason) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        payload = struct.pack("!H", reason.code) + reason.reason.encode()[:_MAX_CLOSE_REASON]
        transport.write(_frame_header(_CLOSE_OPCODE, len(payload)) + payload)
        return True

    async def finish(self) -> None:
        """End the connection once the receive loop is over.

        When the server closed first, the client's reply (or the deadline) ended the loop
        and the server now closes the TCP connection first (RFC 6455 §7.1.1). When the
        client closed first, aiohttp sends the reply and closes, within close_timeout.
        """
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        transport = self._transport
        if self._close_sent or self._ws.closed:
            if transport is not None and not transport.is_closing():
                transport.close()
            return
        try:
            await asyncio.wait_for(self._ws.close(), self._close_timeout)
        except TimeoutError:
            self.abort()

    def write_buffer_size(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        if self._closing:
            return
        if tell:
            while (frame := self._session.next_frame()) is not None:
                self.write(frame)
                if frame[0] == _CLOSE:
                    break
        self._closing = True
        if not 3000 <= reason.code <= 4999:
            reason = CloseReason(WSCloseCode.PROTOCOL_ERROR, reason.reason)
        self._close_sent = self._write_close(reason)
        self._linger()

    def _linger(self) -> None:
        """Stop reading the client, but let our close frame reach it.

        Closing a socket with unread input resets it, and the client may lose the close frame
        in flight. So the socket is no longer read (a flooder's sends just block, at no cost
        to us), our side is shut down after the frame, and the connection is dropped after
        close_timeout. The session is forgotten now: it stops counting against the caps.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        if self._meter is not None:
            self._meter.discard_input()
        transport.pause_reading()
        transport.write_eof()
        self._deadline = asyncio.get_running_loop().call_later(self._close_timeout, self.abort)
        self._session.detach(self)

    def closed_by_protocol(self) -> None:
        """aiohttp has sent its own close frame; nothing more may follow it."""
        self._closing = True


class RawWebSocketReceiver(WebSocketReceiver):
    """No SockJS framing: each message is one text frame, the close frame a real close."""

    def write(self, frame: bytes) -> None:
        if frame[0] != ord("a"):  # `o`, `h` and `c` have no raw equivalent
            return
        for message in cast(list[str], orjson.loads(frame[1:])):
            super().write(message.encode())

    def close_code(self) -> CloseReason:
        reason = self._session.close_reason
        if reason is None or not 3000 <= reason.code <= 4999:
            # protocol-level SockJS codes are not websocket codes
            return CloseReason(WSCloseCode.OK, reason.reason if reason else "")
        return reason


def _refuse_upgrade(manager: SessionManager, request: web.Request) -> web.Response | None:
    if request.method != hdrs.METH_GET:
        # The spec wants a bare 405: an Allow header, no body, no content type.
        return web.Response(status=405, headers={hdrs.ALLOW: "GET"})
    if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
        return error(400, 'Can "Upgrade" only to "WebSocket".')
    connection = {t.strip().lower() for t in request.headers.get(hdrs.CONNECTION, "").split(",")}
    if "upgrade" not in connection:
        return error(400, '"Connection" must be "Upgrade".')
    if not manager.options.origin_allowed(request.headers.get(hdrs.ORIGIN)):
        return error(403, "Origin not allowed.")
    # aiohttp keeps bytes that followed the upgrade request here until the websocket parser
    # exists; the frame meter could not know where their frames end.
    if getattr(request.protocol, "_message_tail", b""):
        return error(400, "Data sent before the handshake.")
    return None


async def _accept(
    manager: SessionManager, request: web.Request
) -> tuple[web.WebSocketResponse, FrameMeter | None]:
    options = manager.options
    ws = web.WebSocketResponse(
        compress=False,
        # aiohttp refuses a message of exactly max_msg_size; our limit is inclusive.
        max_msg_size=options.max_message_size + 1,
        autoping=True,
        # We answer the client's close ourselves: aiohttp's would follow our own close frame
        # with a second one.
        autoclose=False,
        timeout=options.websocket_close_timeout,
    )
    transport = request.transport
    # (uvloop's transports are not asyncio.Transport subclasses; both support set_protocol.)
    meter = FrameMeter.install(transport) if transport is not None else None
    await ws.prepare(request)
    return ws, meter


async def _run(
    manager: SessionManager,
    request: web.Request,
    receiver_class: type[WebSocketReceiver],
    *,
    framed: bool,
) -> web.WebSocketResponse:
    ws, meter = await _accept(manager, request)
    if not manager.has_room_for(request.remote):
        refusal = frames.close_frame(*TOO_MANY_SESSIONS)
        if framed:
            await ws.send_str(refusal.decode())
        await ws.close(code=TOO_MANY_SESSIONS.code, message=TOO_MANY_SESSIONS.reason.encode())
        return ws
    session = manager.create_websocket(
        request.match_info.get("session") if framed else None, request=request
    )
    receiver = receiver_class(
        session, ws, request, close_timeout=manager.options.websocket_close_timeout, meter=meter
    )
    if meter is not None:
        meter.bind(lambda count: session.charge_frames(count))
    try:
        await session.connect(receiver)
        receiver.wake()  # the `o` frame
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if msg.type is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                    # aiohttp already closed the connection with this code (1009 when the
                    # message was too big); record it on the session too.
                    receiver.closed_by_protocol()
                    if msg.data.code == WSCloseCode.MESSAGE_TOO_BIG:
                        session.close(*MESSAGE_TOO_BIG)
                break
            data = msg.data
            if not framed:
                text = data if isinstance(data, str) else data.decode(errors="replace")
                await session.deliver((text,))
                continue
            try:
                messages = frames.decode_messages(data, allow_single=True) if data else []
            except frames.BrokenFrame:
                # As the official suite and sockjs-node: no close frame, the connection ends.
                session.fail(BROKEN_FRAMING, tell=False)
                break
            if messages:
                await session.deliver(messages)
            else:
                session.charge_frames(1)  # empty frames are allowed, mean nothing, and cost
    finally:
        session.detach(receiver)
        await receiver.finish()
    return ws


async def websocket(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    refusal = _refuse_upgrade(manager, request)
    if refusal is not None:
        return refusal
    return await _run(manager, request, WebSocketReceiver, framed=True)


async def raw_websocket(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    refusal = _refuse_upgrade(manager, request)
    if refusal is not None:
        return refusal
    return await _run(manager, request, RawWebSocketReceiver, framed=False)


ROUTES = (Route("websocket", "*", websocket),)
