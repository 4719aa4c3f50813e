"""Bounds on unfinished HTTP requests and on open connections, below any application.

aiohttp already bounds one header line (``max_field_size``), the request line
(``max_line_size``) and the number of header lines (``max_headers``); `HttpBounds` passes them
through. What it lacks is built here, on its own `RequestHandler`:

- a deadline for a request head (``header_timeout``): armed when a connection is accepted and
  when the first byte of a later request arrives, met when the head is parsed;
- a deadline for a request body (``body_timeout``): armed when a head announcing a body is
  parsed, met when the body is complete (xhr_send, jsonp_send);
- a bound on the bytes of an unfinished head (``max_header_bytes``), so an unfinished request
  costs at most that much;
- caps on open connections, overall and per client address, checked at accept.

A request whose head and body have arrived is never timed: the long-lived SockJS receiving
requests (streams, polls, websockets) stay open for as long as they last. Refusals are cheap
(a canned response written straight to the socket) and logged as one rate-limited WARNING
line per address (`AbuseLog`), as are the malformed requests aiohttp's parser rejects (which
aiohttp itself would log at ERROR with a traceback).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import _ErrInfo

from .sockjs.abuselog import AbuseLog

log = logging.getLogger("cursorshare.http")

#: Seconds a refused connection is kept after its answer, half-closed, so that the client can
#: read the answer before the socket goes (closing with unread input would reset it at once).
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class HttpBounds:
    """Every HTTP-level bound, with its default (docs/limits.md lists them)."""

    header_timeout: float = 10.0
    body_timeout: float = 20.0
    keepalive_timeout: float = 75.0
    max_header_bytes: int = 32 * 1024
    max_header_line: int = 8190
    max_headers: int = 100
    max_connections: int = 30_000
    max_connections_per_address: int = 1_000

    def handler_kwargs(self) -> dict[str, Any]:
        """The bounds aiohttp's own `RequestHandler` enforces, as its keyword arguments."""
        return {
            # Request bodies are taken as sent: no SockJS client compresses them, and inflating
            # them would let a few kilobytes of gzip cost seconds of CPU (aiohttp inflates even
            # a body no handler reads, while it drains it after the answer).
            "auto_decompress": False,
            "keepalive_timeout": self.keepalive_timeout,
            "max_line_size": self.max_header_line,
            "max_field_size": self.max_header_line,
            "max_headers": self.max_headers,
        }


def canned_response(status: int, text: str, *headers: str) -> bytes:
    """A complete ``Connection: close`` response, written without aiohttp's machinery."""
    body = text.encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


TOO_MANY_CONNECTIONS = canned_response(503, "Too many connections.", "Retry-After: 5")
HEAD_TOO_LARGE = canned_response(431, "Request header fields too large.")
HEAD_TIMEOUT = canned_response(408, "Request head not received in time.")


class ConnectionGuard:
    """State shared by every connection of one server: the bounds, the counts, the log."""

    def __init__(self, bounds: HttpBounds, abuse: AbuseLog | None = None) -> None:
        self.bounds = bounds
        self.abuse = abuse or AbuseLog(log)
        self.open = 0
        # Only addresses with an open connection are kept: memory follows the connections.
        self.by_address: dict[str, int] = {}

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; why it is refused, or None."""
        if self.open >= self.bounds.max_connections:
            return "the server's connection limit"
        if self.by_address.get(address, 0) >= self.bounds.max_connections_per_address:
            return "this address's connection limit"
        self.open += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]


def _head_size(message: RawRequestMessage) -> int:
    """Bytes of a parsed request head (request line, header lines, CRLFs)."""
    size = len(message.method) + len(message.path) + 12
    for name, value in message.raw_headers:
        size += len(name) + len(value) + 4
    return size


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return "-"  # a unix socket: every peer is the same local address


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP/1 protocol with the deadlines, head-size bound and connection caps."""

    __slots__ = (
        "_address",
        "_admitted",
        "_body_timer",
        "_guard",
        "_head_bytes",
        "_head_timer",
        "_linger_timer",
        "_pending_body",
    )

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address = "-"
        self._admitted = False
        self._head_bytes = 0  # bytes of the request head being received
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._pending_body: StreamReader | None = None

    # -- connection caps -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._address = _address(transport)
        refusal = self._guard.admit(self._address)
        if refusal is not None:
            # Cheap on purpose: no parser, no task; one write and the socket is closed.
            self._guard.abuse.warn(self._address, "connection refused: %s", refusal)
            writer = cast(asyncio.Transport, transport)
            writer.write(TOO_MANY_CONNECTIONS)
            writer.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(
            self._guard.bounds.header_timeout, self._head_overdue
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.release(self._address)
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None
        self._pending_body = None
        super().connection_lost(exc)

    # -- unfinished heads and bodies -------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return  # a refused connection: its input is not even parsed
        body_was_pending = self._pending_body is not None
        parsed_before = self._request_count
        super().data_received(data)
        if self._request_count != parsed_before:
            self._head_parsed(self._request_count - parsed_before)
            return
        if self._upgraded or self._payload_parser is not None or self._close or not data:
            return  # a websocket's frames, or a connection already being closed
        if body_was_pending:
            return  # body bytes: the body deadline covers them
        self._head_bytes += len(data)
        if self._head_bytes > self._guard.bounds.max_header_bytes:
            self._refuse(
                HEAD_TOO_LARGE,
                "request head over %d bytes; answered 431",
                self._guard.bounds.max_header_bytes,
            )
        elif self._head_timer is None:
            self._head_timer = self._loop.call_later(
                self._guard.bounds.header_timeout, self._head_overdue
            )

    def _head_parsed(self, count: int) -> None:
        """``count`` request heads were just parsed (the last ``count`` queued messages)."""
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if not self._messages:
            return
        limit = self._guard.bounds.max_header_bytes
        for index in range(max(0, len(self._messages) - count), len(self._messages)):
            message, _ = self._messages[index]
            if isinstance(message, RawRequestMessage) and _head_size(message) > limit:
                # A whole head over the bound, read in one go: aiohttp answers it as it answers
                # its own parser's errors (through `handle_error`), in its turn.
                error = HttpProcessingError(code=431, message="Request header fields too large.")
                self._messages[index] = (_ErrInfo(431, error, error.message), EMPTY_PAYLOAD)
        _, payload = self._messages[-1]
        if not payload.is_eof():  # a body is announced and not all here yet
            self._body_complete()
            self._pending_body = payload
            self._body_timer = self._loop.call_later(
                self._guard.bounds.body_timeout, self._body_overdue
            )
            payload.on_eof(self._body_complete)

    def _body_complete(self) -> None:
        self._pending_body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._head_bytes == 0:
            self.force_close()  # an idle connection (a browser's preconnect): no answer owed
            return
        self._refuse(
            HEAD_TIMEOUT,
            "request head not complete within %gs; answered 408",
            self._guard.bounds.header_timeout,
        )

    def _body_overdue(self) -> None:
        self._body_timer = None
        payload, self._pending_body = self._pending_body, None
        if payload is None or payload.is_eof():
            return
        self._guard.abuse.warn(
            self._address,
            "request body not complete within %gs; answered 408",
            self._guard.bounds.body_timeout,
        )
        # The handler reading the body gets a 408 to answer with, through aiohttp's usual
        # path; no later request is read from this connection, and it closes after the answer.
        self.close()
        timeout = web.HTTPRequestTimeout(text="Request body not received in time.")
        timeout.force_close()
        payload.set_exception(timeout)
        payload.feed_eof()  # nothing left to linger for

    def _refuse(self, answer: bytes, message: str, *args: object) -> None:
        """End a connection whose unfinished head broke a bound, answering when possible."""
        self._guard.abuse.warn(self._address, message, *args)
        transport = self.transport
        if transport is None:
            return
        if self._request_in_progress or self._messages:
            self.force_close()  # a response is under way: there is no room for an answer
            return
        self.close()  # stops parsing: what else arrives is discarded
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._linger_timer = self._loop.call_later(LINGER_SECONDS, self.force_close)

    # -- quiet logs ------------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            return super().handle_error(request, status, exc, message)  # our bug: traceback
        # Malformed HTTP from the client: one quiet line, and the status aiohttp would give.
        status = 400 if status == 500 else status
        reason = message or (exc.message if isinstance(exc, HttpProcessingError) else str(exc))
        first_line = reason.splitlines()[0] if reason else type(exc).__name__
        self._guard.abuse.warn(self._address, "bad HTTP request (%d): %s", status, first_line)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is dropped")
        response = web.Response(status=status, text=reason or HTTPStatus(status).phrase)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making `GuardedRequestHandler` protocols."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __call__(self) -> web.RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, guard=self.guard, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` serving through a `GuardedServer` bounded by ``bounds``."""

    def __init__(self, app: web.Application, *, bounds: HttpBounds, **kwargs: Any) -> None:
        super().__init__(app, **bounds.handler_kwargs(), **kwargs)
        self.guard = ConnectionGuard(bounds)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the application's startup runs here
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            guard=self.guard,
            **plain._kwargs,
        )
