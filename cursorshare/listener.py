"""The listening socket: waiting connections accepted in batches, on any event loop.

uvloop (libuv) accepts one connection per event-loop iteration. An idle server does not notice,
but a saturated one runs iterations of tens to hundreds of milliseconds, and a burst of new
connections (a page load of many browsers, reconnects after a restart, an HTTP client opening
another keep-alive connection) then waits in the kernel's accept queue: measured here with 1000
xhr-polling clients on one core, 900 connections waited and drained at 5 to 25 a second, and the
first requests on them were answered after 11 s, while those on accepted connections took 30 ms.
The kernel had completed those handshakes, so the clients had sent their requests.

`ListeningSite` owns the listening socket instead: when it is readable, it accepts until the
queue is empty or a batch of `ACCEPTS_PER_WAKEUP` is taken (so one wake-up stays short), and
gives each connection to the loop as an accepted socket, which serves it as ``create_server``
would have. The stdlib loop accepts in batches the same way; with it nothing changes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterable

from aiohttp import web

__all__ = ["CannotListen", "ListeningSite", "accept_waiting", "listening_sockets", "url_host"]

log = logging.getLogger(__name__)

#: Connections accepted per wake-up at most: a burst drains in a few loop turns while the
#: connections already open are served between them. In a burst of 5000 connections, an open
#: connection's worst wait for an answer was 252 ms when a wake-up took the whole 2048
#: backlog, 130 ms at 128, 82 ms at 64 (37-49 ms on aiohttp's own site, which uvloop feeds one
#: connection per turn, and whose burst took seconds to be accepted under load).
ACCEPTS_PER_WAKEUP = 64
#: Seconds to stop accepting after the process ran out of descriptors or memory (as asyncio).
ACCEPT_RETRY_DELAY = 1.0
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class CannotListen(OSError):
    """The address cannot be listened on (taken, not this host's, not resolvable): a mistake
    in the settings or another program on the port, which retrying does not mend."""


def url_host(host: str) -> str:
    """``host`` as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def listening_sockets(
    host: str | None, port: int, *, backlog: int, reuse_port: bool = False
) -> list[socket.socket]:
    """Non-blocking listening sockets for every address ``host`` resolves to (as
    ``loop.create_server`` binds them: SO_REUSEADDR, IPv6 sockets IPv6-only).

    Raises `CannotListen`, naming the address, when ``host`` does not resolve or an address
    cannot be bound.
    """
    if not 0 <= port <= 65535:  # getaddrinfo would take it modulo 65536: 99999 is 34463
        raise CannotListen(errno.EINVAL, f"cannot listen on port {port}: not in 0-65535")
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:  # socket.gaierror: no such host
        raise CannotListen(
            exc.errno, f"cannot listen on {url_host(host or '*')}:{port}: {exc.strerror}"
        ) from exc
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                sock.listen(backlog)
            except OSError as exc:
                where = f"{url_host(str(address[0]))}:{port}"
                raise CannotListen(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def accept_waiting(listener: socket.socket, limit: int) -> list[socket.socket]:
    """Accept up to ``limit`` waiting connections, non-blocking; stops when none is left.

    Raises the ``OSError`` of a failed accept only when nothing was accepted before it.
    """
    accepted: list[socket.socket] = []
    for _ in range(limit):
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            break
        except ConnectionAbortedError:
            continue  # the client gave up while queued: nothing to serve
        except OSError:
            if accepted:
                break  # serve these; the error comes back on the next wake-up
            raise
        conn.setblocking(False)
        accepted.append(conn)
    return accepted


class _Listener(asyncio.AbstractServer):
    """What aiohttp's runner uses of a site's server: ``sockets`` and ``close``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: Iterable[socket.socket]) -> None:
        self._loop = loop
        self.sockets = tuple(sockets)

    def close(self) -> None:
        for sock in self.sockets:
            if sock.fileno() != -1:
                self._loop.remove_reader(sock.fileno())
                sock.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return any(sock.fileno() != -1 for sock in self.sockets)

    async def wait_closed(self) -> None:
        return None

    async def start_serving(self) -> None:
        return None  # serving from `ListeningSite.start` on

    async def serve_forever(self) -> None:
        raise NotImplementedError("run the aiohttp runner instead")


class ListeningSite(web.BaseSite):
    """A TCP site (as ``web.TCPSite``) that accepts waiting connections in batches of up to
    `ACCEPTS_PER_WAKEUP` per wake-up (uvloop's own server takes one per loop turn)."""

    __slots__ = ("_host", "_paused_at", "_pauses", "_port", "_reuse_port", "_tasks")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        #: Hand-overs of accepted sockets still running: a strong reference each.
        self._tasks: set[asyncio.Task[object]] = set()
        #: Pauses for want of descriptors since accepting last worked, and when the first began:
        #: one ERROR line when it starts, one WARNING when it ends, not a line a second.
        self._pauses = 0
        self._paused_at = 0.0

    @property
    def name(self) -> str:
        return f"http://{url_host(self._host or '0.0.0.0')}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        sockets = listening_sockets(
            self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port
        )
        self._server = _Listener(loop, sockets)
        for sock in sockets:
            loop.add_reader(sock.fileno(), self._readable, loop, sock)

    def _readable(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        try:
            accepted = accept_waiting(listener, min(self._backlog, ACCEPTS_PER_WAKEUP))
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRORS:
                log.warning("accepting a connection failed: %s", exc)
                return
            # Out of descriptors or memory: stop listening a moment rather than spin on a
            # socket that stays readable.
            if self._pauses == 0:
                self._paused_at = loop.time()
                log.error(
                    "accepting connections paused: %s; retrying every %gs",
                    exc.strerror,
                    ACCEPT_RETRY_DELAY,
                )
            else:
                log.debug("accepting connections still paused: %s", exc.strerror)
            self._pauses += 1
            loop.remove_reader(listener.fileno())
            loop.call_later(ACCEPT_RETRY_DELAY, self._resume, loop, listener)
            return
        if self._pauses:
            log.warning(
                "accepting connections again after %.1fs (%d pauses)",
                loop.time() - self._paused_at,
                self._pauses,
            )
            self._pauses = 0
        factory = self._runner.server
        if factory is None:  # the runner is shutting down
            for conn in accepted:
                conn.close()
            return
        for conn in accepted:
            task: asyncio.Task[object] = loop.create_task(
                loop.connect_accepted_socket(factory, conn)
            )
            self._tasks.add(task)
            task.add_done_callback(self._handed_over)

    def _handed_over(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a client that left at once (a reset) is nothing to warn of
            level = logging.DEBUG if isinstance(exc, ConnectionError) else logging.WARNING
            log.log(level, "serving an accepted connection failed: %r", exc)

    def _resume(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        if listener.fileno() != -1:
            loop.add_reader(listener.fileno(), self._readable, loop, listener)
