"""The four SockJS transports of the load generator, one small client class each.

Each class knows only its transport's framing; accounting and sending live in
:class:`~cursorshare.bench.clients.SockJSClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import aiohttp

from .clients import YIELD_EVERY, SessionClosed, SockJSClient

__all__ = [
    "TRANSPORTS",
    "EventSourceClient",
    "WebSocketClient",
    "XhrPollingClient",
    "XhrStreamingClient",
    "client_class",
]


class WebSocketClient(SockJSClient):
    """``/<server>/<session>/websocket``: one SockJS frame per websocket text message."""

    transport = "websocket"
    buffered_sender = False  # sockjs-client's websocket transport sends each message at once

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        url = self.session_url + "/websocket" + self.query
        self.ws_url = "ws" + url[4:] if url.startswith("http") else url

    async def _run(self) -> None:
        ws = await self.http.ws_connect(
            self.ws_url,
            autoping=True,
            heartbeat=None,
            max_msg_size=0,
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
        )
        self._ws = ws
        try:
            text = aiohttp.WSMsgType.TEXT
            budget = YIELD_EVERY
            while self._alive():
                budget -= 1
                if budget == 0:
                    budget = YIELD_EVERY
                    await asyncio.sleep(0)
                msg = await ws.receive()
                if msg.type is not text:
                    if msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                    ):
                        if not self.close_reason:
                            self.close_reason = f"websocket closed ({ws.close_code})"
                        return
                    if msg.type is aiohttp.WSMsgType.ERROR:
                        raise RuntimeError(f"websocket error: {ws.exception()!r}")
                    continue
                frame: str = msg.data
                if not frame:
                    continue
                if frame[0] == "a":
                    self._messages_str(frame)
                elif not self._control(ord(frame[0]), frame):
                    return
        finally:
            self._ws = None
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2.0)

    async def _send(self, body: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise SessionClosed("websocket is not open")
        await ws.send_str(body)


class _StreamingClient(SockJSClient):
    """Shared loop of the streaming transports: one long response, reopened when it ends.

    The response's body chunks are parsed as they arrive (``_frames``, called by the HTTP
    connection); a frame cut by a chunk boundary waits in ``_carry`` for the rest.
    """

    method: ClassVar[str] = "POST"
    path: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._carry = b""
        self._ended = False  # the session ended (a `c` frame) or the run's deadline passed

    async def _run(self) -> None:
        request = self.pool.encode(self.method, self.session_url + self.path + self.query)
        first = True
        while self._alive():
            if not first:
                self.tally.reopens += 1
            first = False
            self._carry = b""
            status, _ = await self.pool.request(request, self._feed, long=True)
            if status == 404:
                raise SessionClosed(f"{self.path}: session not found")
            if status != 200:
                raise RuntimeError(f"{self.path}: HTTP {status}")
            if self._ended:
                return
            # Otherwise the server ended the response (its response_limit): reopen.

    def _feed(self, chunk: bytes) -> bool:
        """One body chunk of the stream; False stops reading it."""
        if self._frames(chunk) and self._alive():
            return True
        self._ended = True
        return False

    def _frames(self, chunk: bytes) -> bool:  # pragma: no cover - abstract
        """Parse the frames ``chunk`` completes; False when the session ended."""
        raise NotImplementedError


class XhrStreamingClient(_StreamingClient):
    """POST ``xhr_streaming``: a 2048-byte ``h`` prelude, then newline-terminated frames."""

    transport = "xhr-streaming"
    path = "/xhr_streaming"

    def _frames(self, chunk: bytes) -> bool:
        buf = self._carry + chunk if self._carry else chunk
        start = 0
        nl = buf.find(b"\n")
        while nl >= 0:
            if not self._frame_bytes(buf, start, nl):
                return False
            start = nl + 1
            nl = buf.find(b"\n", start)
        self._carry = buf[start:]
        return True


class EventSourceClient(_StreamingClient):
    """GET ``eventsource``: a ``\\r\\n`` prelude, then ``data: <frame>\\r\\n\\r\\n`` events."""

    transport = "eventsource"
    method = "GET"
    path = "/eventsource"

    def _frames(self, chunk: bytes) -> bool:
        buf = self._carry + chunk if self._carry else chunk
        start = 0
        end = buf.find(b"\r\n\r\n")
        while end >= 0:
            s = start
            while buf.startswith(b"\r\n", s, end):
                s += 2
            if buf.startswith(b"data: ", s, end):
                s += 6
                if not self._frame_bytes(buf, s, end):
                    return False
            start = end + 4
            end = buf.find(b"\r\n\r\n", start)
        self._carry = buf[start:]
        return True


class XhrPollingClient(SockJSClient):
    """POST ``xhr`` in a loop: each response is one frame and a newline."""

    transport = "xhr-polling"

    async def _run(self) -> None:
        request = self.pool.encode("POST", self.session_url + "/xhr" + self.query)
        first = True
        while self._alive():
            if not first:
                self.tally.reopens += 1
            first = False
            status, body = await self.pool.request(request, long=True)
            if status == 404:
                raise SessionClosed("xhr: session not found")
            if status != 200:
                raise RuntimeError(f"xhr: HTTP {status}")
            end = len(body)
            while end > 0 and body[end - 1] == 0x0A:
                end -= 1
            if not self._frame_bytes(body, 0, end):
                return


TRANSPORTS: dict[str, type[SockJSClient]] = {
    cls.transport: cls
    for cls in (WebSocketClient, XhrStreamingClient, EventSourceClient, XhrPollingClient)
}


def client_class(transport: str) -> type[SockJSClient]:
    try:
        return TRANSPORTS[transport]
    except KeyError:
        raise ValueError(
            f"unknown transport {transport!r} (choose from {', '.join(TRANSPORTS)})"
        ) from None
