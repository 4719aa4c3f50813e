"""A burst of new connections is accepted at once, however busy the event loop is.

uvloop accepts one connection per loop iteration; on a saturated server (iterations of tens to
hundreds of ms) a burst of 1000 connections waited in the kernel's queue for up to 11 s. These
tests count loop iterations, not time: a callback that re-schedules itself runs once per
iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import uvloop
from aiohttp import web

from cursorshare.listener import ListeningSite, accept_waiting, listening_sockets

BURST = 200


@contextlib.contextmanager
def listener(backlog: int = 512) -> Iterator[socket.socket]:
    (sock,) = listening_sockets("127.0.0.1", 0, backlog=backlog)
    try:
        yield sock
    finally:
        sock.close()


def connect_all(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections whose handshakes the kernel completed (none accepted yet)."""
    return [socket.create_connection(address, timeout=10) for _ in range(count)]


def test_accept_waiting_takes_every_queued_connection_in_one_call() -> None:
    with listener() as sock:
        clients = connect_all(sock.getsockname(), 50)
        try:
            accepted = accept_waiting(sock, 1000)
            assert len(accepted) == 50
            assert accept_waiting(sock, 1000) == []  # the queue is empty: no blocking
            for conn in accepted:
                assert not conn.getblocking()
                conn.close()
        finally:
            for client in clients:
                client.close()


def test_accept_waiting_stops_at_its_limit() -> None:
    with listener() as sock:
        clients = connect_all(sock.getsockname(), 30)
        try:
            first = accept_waiting(sock, 10)
            rest = accept_waiting(sock, 100)
            assert (len(first), len(rest)) == (10, 20)
            for conn in first + rest:
                conn.close()
        finally:
            for client in clients:
                client.close()


def test_listening_sockets_close_what_they_opened_when_binding_fails() -> None:
    with listener() as taken, pytest.raises(OSError):
        listening_sockets("127.0.0.1", taken.getsockname()[1], backlog=16)


async def _answered_within_iterations(make_site: str) -> int:
    """Loop iterations until a burst of BURST requests, sent while the loop was not running,
    are all answered."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site: web.BaseSite
    if make_site == "listening":
        site = ListeningSite(runner, "127.0.0.1", 0, backlog=1024)
    else:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    iterations = 0

    def tick() -> None:
        nonlocal iterations
        iterations += 1
        loop.call_soon(tick)

    loop = asyncio.get_running_loop()
    # Synchronous, so the loop runs nothing meanwhile: the kernel queues the whole burst.
    clients = connect_all(("127.0.0.1", port), BURST)
    try:
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            client.setblocking(False)
        loop.call_soon(tick)
        pending = set(clients)
        while pending:
            await asyncio.sleep(0)
            for client in list(pending):
                with contextlib.suppress(BlockingIOError):
                    if client.recv(4096).startswith(b"HTTP/1.1 200"):
                        pending.discard(client)
            if iterations > 10 * BURST:
                break
        return iterations
    finally:
        for client in clients:
            client.close()
        await runner.cleanup()


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop])
def test_a_burst_is_served_in_a_few_loop_iterations(loop_factory: object) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as run:  # type: ignore[arg-type]
        iterations = run.run(_answered_within_iterations("listening"))
    assert iterations < BURST // 4, f"{BURST} requests took {iterations} loop iterations"


def test_uvloops_own_server_needs_an_iteration_per_connection() -> None:
    """Why `ListeningSite` exists: if uvloop ever accepts in batches, it can go."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as run:
        iterations = run.run(_answered_within_iterations("tcp"))
    assert iterations >= BURST // 2


# A server out of descriptors (RLIMIT_NOFILE 64): its accept fails with EMFILE until
# connections close. It prints its port, then logs the listener at DEBUG.
_STARVED_SERVER = """
import asyncio, logging, resource, sys
import uvloop
from aiohttp import web
from cursorshare import listener
listener.ACCEPT_RETRY_DELAY = 0.05  # many pauses, quickly: the test counts log lines
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(message)s")
logging.getLogger("cursorshare.listener").setLevel(logging.DEBUG)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

async def main() -> None:
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="hello"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = listener.ListeningSite(runner, "127.0.0.1", 0, backlog=512)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def test_running_out_of_descriptors_is_one_error_line_then_one_line_when_it_ends() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _STARVED_SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in server.stderr], daemon=True
    ).start()
    seen: list[str] = []

    deadline = time.monotonic() + 60  # an upper bound on the events, not a delay

    def wait_for(text: str, times: int = 1) -> None:
        while sum(text in line for line in seen) < times:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {len(seen)} lines: {seen[:3]}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=left))

    clients: list[socket.socket] = []
    try:
        port = int(server.stdout.readline())
        clients = connect_all(("127.0.0.1", port), 100)  # more than 64 descriptors
        wait_for("still paused", times=5)
        for client in clients:
            client.close()
        wait_for("accepting connections again")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as fresh:
            fresh.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert fresh.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for client in clients:
            client.close()
        server.kill()
        server.wait()
    loud = [line for line in seen if not line.startswith("DEBUG")]
    assert [line.split()[0] for line in loud] == ["ERROR", "WARNING"], loud
    assert "Too many open files" in loud[0]
