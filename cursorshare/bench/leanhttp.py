"""A lean HTTP/1.1 keep-alive client for the load generator's HTTP transports.

aiohttp's ``ClientSession`` spends most of a load generator's core on what a load generator
does not need per request: URL objects, header multidicts, tracing hooks, the cookie jar,
timeout contexts, a ``StreamReader``. This client does one thing: write a request whose bytes
were encoded once (a SockJS client's URLs never change) on a pooled keep-alive connection, and
read the response with httptools' ``HttpResponseParser`` (llhttp, the parser uvicorn uses) in
``asyncio.Protocol.data_received``, without an intermediate buffer or task.

- A response is either collected whole (``Content-Length`` or chunked; status and body are
  returned), or, for the long responses of the streaming transports, its body chunks are handed
  to a *sink* as they arrive while the response holds its connection.
- A connection goes back to the pool when its response is complete and the server did not ask
  to close it (``Connection: close``, HTTP/1.0); the pool hands out the most recently used idle
  connection first and closes those idle for ``keepalive_timeout`` seconds, before servers drop
  them (node's http server does after 5 s).
- A connection that ends before its response is complete fails the request with
  :class:`ConnectionDropped`; the caller decides whether to retry (``xhr_send`` does, once, as
  browsers do when the server has just closed an idle keep-alive connection).
- A response that ends only when the server closes the connection (neither length nor chunked)
  is reported as dropped: neither server under test sends one.

Only ``http`` and ``https`` URLs of one origin per pool; no redirects, cookies, compression
(no ``Accept-Encoding`` is sent) or proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["KEEPALIVE_TIMEOUT", "REQUEST_TIMEOUT", "ConnectionDropped", "HttpPool", "Sink"]

# Seconds an idle keep-alive connection is kept (see the module docstring).
KEEPALIVE_TIMEOUT = 4.0
# Seconds a request that is not a long response may wait for its response (and a new
# connection for its connect); aiohttp's session had the same total timeout.
REQUEST_TIMEOUT = 30.0
# How often the pool closes expired idle connections and fails overdue requests (s).
WATCH_EVERY = 1.0

#: Receives each body chunk of a 200 response; returns False to stop reading it (the
#: connection is then closed, since the rest of the response is still on it).
Sink = Callable[[bytes], bool]
Response = tuple[int, bytes]


class ConnectionDropped(ConnectionError):
    """The connection ended before the whole response arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its response parsed inline."""

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.sink: Sink | None = None
        self.long = False  # the request in flight is a long response: no timeout
        self.started = 0.0  # loop time the request in flight was written
        self.idle_since = 0.0
        self.status = 0
        self.body: list[bytes] = []
        self.closed = False

    # -- requests -------------------------------------------------------------------------

    def start(
        self, data: bytes, sink: Sink | None, long: bool, now: float
    ) -> asyncio.Future[Response]:
        assert self.transport is not None and self.waiter is None
        waiter: asyncio.Future[Response] = self.pool.loop.create_future()
        self.waiter = waiter
        self.sink = sink
        self.long = long
        self.started = now
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def fail(self, exc: BaseException) -> None:
        """End the request in flight with ``exc`` and close the connection."""
        waiter = self.waiter
        self.waiter = None
        self.sink = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.pool.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # One of our callbacks raised (a sink's error): that error is the news.
            self.fail(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self.fail(ConnectionDropped(f"malformed HTTP response: {exc!r}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.connections.discard(self)
        self.fail(ConnectionDropped(f"the server closed the connection ({exc or 'EOF'})"))

    # -- httptools callbacks (called from feed_data) ---------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is None or self.status != 200:
            if not self.closed:
                self.body.append(body)
            return
        if not sink(body):
            # The reader is done; the rest of the response is still on the connection.
            waiter = self.waiter
            self.waiter = None
            self.sink = None
            self.close()
            if waiter is not None and not waiter.done():
                waiter.set_result((200, b""))

    def on_message_complete(self) -> None:
        if self.closed:
            return
        waiter = self.waiter
        if waiter is None:  # a response nobody asked for
            self.close()
            return
        self.waiter = None
        self.sink = None
        body = self.body
        result = (self.status, b"".join(body) if body else b"")
        self.body = []
        if self.parser.should_keep_alive():
            self.pool.release(self)
        else:
            self.close()
        if not waiter.done():
            waiter.set_result(result)


class HttpPool:
    """Keep-alive connections to one origin, for one generator process (one event loop).

    ``opened`` counts the connections opened so far (a measure of reuse).
    """

    def __init__(
        self,
        base_url: str,
        *,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the load generator's HTTP client needs an http(s) URL: {base_url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self._host_header = f"Host: {parts.netloc}\r\n"
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.connections: set[_Connection] = set()
        self.idle: list[_Connection] = []  # most recently released last
        self.opened = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- request bytes, encoded once per client ----------------------------------------------

    def _target(self, url: str) -> str:
        if not url.startswith(self.origin + "/"):
            raise ValueError(f"{url!r} is not under {self.origin}")
        return url[len(self.origin) :]

    def encode(self, method: str, url: str, body: bytes = b"", content_type: str = "") -> bytes:
        """A whole request: ``method url`` with ``body`` (POSTs always carry a length)."""
        head = self.head(method, url, content_type)
        if body or method == "POST":
            return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return head + b"\r\n"

    def head(self, method: str, url: str, content_type: str = "") -> bytes:
        """A request head up to, not including, ``Content-Length`` and the blank line."""
        ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
        return f"{method} {self._target(url)} HTTP/1.1\r\n{self._host_header}{ctype}".encode()

    # -- requests -------------------------------------------------------------------------

    async def request(
        self, data: bytes, sink: Sink | None = None, *, long: bool = False
    ) -> Response:
        """Send the encoded request ``data``; return the response's status and body.

        With ``sink``, a 200 response's body goes to it instead (the body returned is empty).
        ``long``: the response may take any time (a poll or a stream), no request timeout.
        Raises :class:`ConnectionDropped` (or ``OSError`` while connecting) and ``TimeoutError``.
        """
        conn = self._take_idle()
        if conn is None:
            conn = await self._connect()
        waiter = conn.start(data, sink, long, self.loop.time())
        try:
            return await waiter
        except asyncio.CancelledError:
            conn.close()  # the response may still come: this connection is spoiled
            raise

    def _take_idle(self) -> _Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> _Connection:
        loop = self.loop
        if self._watch_task is None:
            self._watch_task = loop.create_task(self._watch())
        async with asyncio.timeout(self.request_timeout):
            _, conn = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self.ssl
            )
        self.opened += 1
        return conn

    async def prewarm(self, count: int, concurrency: int = 100) -> None:
        """Open ``count`` idle keep-alive connections now, at most ``concurrency`` at a time.

        A browser's page has its connections open before its user moves; without this, every
        client's send connection would be opened in the load's first period, a burst of new
        connections at a server already under load.
        """
        sem = asyncio.Semaphore(max(1, concurrency))

        async def one() -> None:
            async with sem:
                self.release(await self._connect())

        await asyncio.gather(*(one() for _ in range(count)))

    def release(self, conn: _Connection) -> None:
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    async def _watch(self) -> None:
        """Close idle connections past their keep-alive time, fail overdue requests."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = self.loop.time()
            oldest = now - self.keepalive_timeout
            fresh = []
            for conn in self.idle:
                if conn.closed:
                    continue
                if conn.idle_since < oldest:
                    conn.close()
                else:
                    fresh.append(conn)
            self.idle = fresh
            overdue = now - self.request_timeout
            for conn in list(self.connections):
                if conn.waiter is not None and not conn.long and conn.started < overdue:
                    conn.fail(TimeoutError(f"no response within {self.request_timeout} s"))

    async def close(self) -> None:
        """Close every connection (requests in flight fail with ConnectionDropped)."""
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        for conn in list(self.connections):
            conn.close()
        self.idle = []

    async def __aenter__(self) -> HttpPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
