"""WebSocket: SockJS frames over `/{server}/{session}/websocket`, and the raw `/websocket`.

The session lives as long as the connection; session ids may be reused. Frames are written
straight to the socket as they are produced, so a broadcast never waits for a slow reader:
what the client has not read shows up as the session's backlog, and past max_queue_bytes the
session is closed as a slow consumer.
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
    INTERRUPTED,
    MESSAGE_TOO_BIG,
    TOO_MANY_SESSIONS,
    MsgType,
    SockjsMessage,
)
from ..session import Session
from .base import Route

_CLOSE = ord("c")
_TEXT = 0x81  # FIN + text opcode; we never fragment and never compress


def _text_frame_header(length: int) -> bytes:
    if length < 126:
        return bytes((_TEXT, length))
    if length < 1 << 16:
        return struct.pack("!BBH", _TEXT, 126, length)
    return struct.pack("!BBQ", _TEXT, 127, length)


class WebSocketReceiver:
    """Writes SockJS frames as websocket text frames, synchronously."""

    ends_session = True

    def __init__(self, session: Session, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._session = session
        self._ws = ws
        # aiohttp's writer is async (it may wait for the socket to drain); the fan-out must
        # not, so complete frames go to the transport directly. Compression is off on these
        # connections, which keeps each frame one plain write.
        self._transport = request.transport
        self._closing = False
        self._close_task: asyncio.Task[bool] | None = None

    def wake(self) -> None:
        while not self._closing and (frame := self._session.next_frame()) is not None:
            self.write(frame)
            if frame[0] == _CLOSE:
                self._closing = True
                self.close()

    def write(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_text_frame_header(len(frame)) + frame)

    def close(self) -> None:
        self._close_task = asyncio.get_running_loop().create_task(self._ws.close())

    def write_buffer_size(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def closed_by_protocol(self) -> None:
        """aiohttp has sent its own close frame; nothing more may follow it."""
        self._closing = True


class RawWebSocketReceiver(WebSocketReceiver):
    """No SockJS framing: each message is one text frame, the close frame a real close."""

    def write(self, frame: bytes) -> None:
        if frame[0] != ord("a"):  # `o` and `h` have no raw equivalent
            return
        for message in cast(list[str], orjson.loads(frame[1:])):
            super().write(message.encode())

    def close(self) -> None:
        reason = self._session.close_reason
        code, text = (reason.code, reason.reason) if reason else (1000, "")
        if not 3000 <= code <= 4999:
            code = WSCloseCode.OK  # protocol-level SockJS codes are not websocket codes
        self._close_task = asyncio.get_running_loop().create_task(
            self._ws.close(code=code, message=text.encode())
        )


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
    return None


async def _accept(manager: SessionManager, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        compress=False,
        # aiohttp refuses a message of exactly max_msg_size; our limit is inclusive.
        max_msg_size=manager.options.max_message_size + 1,
        autoping=True,
    )
    await ws.prepare(request)
    return ws


async def _run(
    manager: SessionManager,
    request: web.Request,
    ws: web.WebSocketResponse,
    receiver_class: type[WebSocketReceiver],
    *,
    framed: bool,
) -> None:
    if not manager.has_room_for(request.remote):
        refusal = frames.close_frame(*TOO_MANY_SESSIONS)
        if framed:
            await ws.send_str(refusal.decode())
        await ws.close(code=TOO_MANY_SESSIONS.code, message=TOO_MANY_SESSIONS.reason.encode())
        return
    session = manager.create(
        request.match_info.get("session", "raw"),
        transport="websocket",
        remote=request.remote,
        query=request.query,
        request=request,
    )
    receiver = receiver_class(session, ws, request)
    session.attach(receiver)
    receiver.wake()  # the `o` frame
    try:
        await manager.dispatch(session, SockjsMessage(MsgType.OPEN))
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if msg.type is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                    # aiohttp already closed the connection with this code (1009 when the
                    # message was too big); record it on the session too.
                    receiver.closed_by_protocol()
                    if msg.data.code == WSCloseCode.MESSAGE_TOO_BIG:
                        session.close(*MESSAGE_TOO_BIG)
                break
            if not framed:
                data = msg.data if isinstance(msg.data, str) else msg.data.decode(errors="replace")
                await manager.dispatch(session, SockjsMessage(MsgType.MESSAGE, data))
                continue
            if not msg.data:
                continue  # empty frames are allowed and mean nothing
            try:
                messages = frames.decode_messages(msg.data, allow_single=True)
            except frames.BrokenFrame:
                session.close(*BROKEN_FRAMING)
                break
            for message in messages:
                await manager.dispatch(session, SockjsMessage(MsgType.MESSAGE, message))
    finally:
        session.close(*INTERRUPTED)
        session.detach(receiver)


async def websocket(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    refusal = _refuse_upgrade(manager, request)
    if refusal is not None:
        return refusal
    ws = await _accept(manager, request)
    await _run(manager, request, ws, WebSocketReceiver, framed=True)
    return ws


async def raw_websocket(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    refusal = _refuse_upgrade(manager, request)
    if refusal is not None:
        return refusal
    ws = await _accept(manager, request)
    await _run(manager, request, ws, RawWebSocketReceiver, framed=False)
    return ws


ROUTES = (Route("websocket", "*", websocket),)
