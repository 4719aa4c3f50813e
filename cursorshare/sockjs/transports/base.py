"""What the transports share: the route shape, and the receiver of HTTP transports.

Every HTTP transport is the same receiver in a different framing: a polling one answers with
one frame, a streaming one writes frames until its response_limit, then ends so the client
reopens. Only `prelude` and `encode` differ between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import hdrs, web

from .. import frames
from ..http import error, session_headers
from ..manager import SessionManager
from ..messages import ANOTHER_CONNECTION, SESSION_LOST, CloseReason
from ..remote import RemoteSession, SessionGone, SessionLost
from ..session import Session

_CLOSE = frames.close_frame(0, "")[0]  # the `c` byte that starts every close frame
_ANOTHER_CONNECTION = frames.close_frame(*ANOTHER_CONNECTION)
_SESSION_LOST = frames.close_frame(*SESSION_LOST)

#: What a client refused for the session limits is told to wait before trying again.
RETRY_AFTER_SECONDS = 5

TransportHandler = Callable[[SessionManager, web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route of a transport: `{prefix}/{server}/{session}/{name}` answered for `method`."""

    name: str
    method: str
    handler: TransportHandler


def too_many_sessions(manager: SessionManager, request: web.Request) -> web.Response:
    headers = session_headers(request, manager.options)
    headers[hdrs.RETRY_AFTER] = str(RETRY_AFTER_SECONDS)
    return error(503, "Too many sessions.", headers)


class HttpReceiver:
    """A receiving HTTP request attached to a session; subclasses say how frames look."""

    #: Transport name, as in the URL.
    name: ClassVar[str]
    content_type: ClassVar[str]
    #: Streaming receivers write frames until response_limit; polling ones write one.
    streaming: ClassVar[bool] = False
    ends_session = False

    def __init__(self, manager: SessionManager, request: web.Request) -> None:
        self.manager = manager
        self.request = request
        self._waiter: asyncio.Future[None] | None = None
        #: Set when `serve` is done with the session (see `settled`).
        self._ended: asyncio.Future[None] | None = None

    # -- framing (the only thing subclasses change) ---------------------------------------

    def prelude(self) -> bytes:
        """Bytes sent before the first frame of a streaming response."""
        return b""

    def encode(self, frame: bytes) -> bytes:
        raise NotImplementedError

    # -- Receiver -----------------------------------------------------------------------------

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # `request.transport` is the connection's asyncio transport, not a SockJS transport.
    def write_buffer_size(self) -> int:
        connection = self.request.transport
        return connection.get_write_buffer_size() if connection is not None else 0

    def gone(self) -> bool:
        """The client's connection is lost (aiohttp drops the request's transport then)."""
        return self.request.transport is None

    async def settled(self) -> None:
        """Another request for the session came while this one waits (`receiver.InDoubt`): if
        this one's client is gone (a lost connection aiohttp did not cancel), end it now as
        the abort it is, so the newcomer gets the session's 1002, not a 2010 for a request
        nobody will read (sockjs-protocol's HandlingClose.test_abort_*)."""
        if self._waiter is None or not self.gone():
            return
        self._ended = asyncio.get_running_loop().create_future()
        self.wake()
        await self._ended

    def abort(self) -> None:
        connection = self.request.transport
        if connection is not None:
            connection.abort()

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        # A request answers once anyway: send the close frame like any close.
        if tell:
            self.wake()
        else:
            self.abort()

    # -- serving ------------------------------------------------------------------------------

    async def serve(self) -> web.StreamResponse:
        try:
            session = await self.manager.open_http(
                self.request.match_info["session"],
                transport=self.name,
                request=self.request,
                once=not self.streaming,
            )
        except SessionLost:
            # As a closed session answers: its close frame, in this transport's framing.
            headers = self._headers()
            response = web.StreamResponse(headers=headers) if self.streaming else None
            return await self._answer_once(response, headers, _SESSION_LOST)
        except SessionGone:
            return error(
                503, "Session unreachable.", session_headers(self.request, self.manager.options)
            )
        if session is None:
            return too_many_sessions(self.manager, self.request)
        headers = self._headers()
        # A poll answers with a plain Response; only a stream needs a StreamResponse (its
        # headers are built once either way: they are a fair share of a poll's cost).
        response = web.StreamResponse(headers=headers) if self.streaming else None
        answer: web.StreamResponse | None = response
        try:
            if not await session.connect(self):
                return await self._answer_once(response, headers, _ANOTHER_CONNECTION)
            if response is not None:
                await self._stream(session, response)
            else:
                frame = await self._next(session)
                answer = await self._answer_once(None, headers, frame)
        except asyncio.CancelledError:
            session.detach(self, interrupted=True)
            raise
        except ConnectionError:
            # The client went away mid-write: an abort like any other, not a server error
            # (aiohttp finishes a response on a dead connection quietly).
            session.detach(self, interrupted=True)
        else:
            session.detach(self)
        finally:
            if self._ended is not None and not self._ended.done():
                self._ended.set_result(None)
        # A poll whose client went away still returns a response, as before, for aiohttp to
        # drop quietly.
        return answer if answer is not None else web.StreamResponse(headers=headers)

    def _headers(self) -> dict[str, str]:
        headers = session_headers(self.request, self.manager.options)
        headers[hdrs.CONTENT_TYPE] = self.content_type
        return headers

    async def _next(self, session: Session | RemoteSession) -> bytes:
        """Wait until the session has a frame for this receiver."""
        while (frame := session.next_frame()) is None:
            if self.gone():
                raise ConnectionResetError("the client went away")
            self._waiter = asyncio.get_running_loop().create_future()
            self.manager.watch(self)
            try:
                await self._waiter
            finally:
                self._waiter = None
                self.manager.unwatch(self)
        return frame

    async def _answer_once(
        self, response: web.StreamResponse | None, headers: dict[str, str], frame: bytes
    ) -> web.StreamResponse:
        if response is not None:
            await self._start_stream(response)
            await response.write(self.encode(frame))
            await response.write_eof()
            return response
        return web.Response(body=self.encode(frame), headers=headers)

    async def _start_stream(self, response: web.StreamResponse) -> None:
        if self.request.version < (1, 1):
            # HTTP/1.0 has no chunking: only closing the connection ends the response.
            response.force_close()
        await response.prepare(self.request)
        await response.write(self.prelude())

    async def _stream(self, session: Session | RemoteSession, response: web.StreamResponse) -> None:
        await self._start_stream(response)
        limit = self.manager.options.response_limit
        sent = 0
        while True:
            frame = await self._next(session)
            data = self.encode(frame)
            await response.write(data)
            sent += len(data)
            if frame[0] == _CLOSE or sent >= limit:
                break
            if isinstance(session, RemoteSession) and session.handed_back:
                break  # its node is stopping: the client reopens through another
        await response.write_eof()
