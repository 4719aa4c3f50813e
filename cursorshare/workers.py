"""`cursorshare serve --workers N`: N server processes on one port, sharing rooms through Redis.

Each worker is a whole node (its own event loop, hub, sessions and node id) listening on the
same address with ``SO_REUSEPORT``: the kernel spreads incoming connections over the workers,
so a session's requests may reach any of them, and the session directory (which needs the
Redis backplane) lets each serve them. No balancer is needed in front.

The parent starts the workers, restarts any that dies, and stops them: SIGTERM or SIGINT is
passed on to every worker, each closes its sessions and says goodbye to Redis, and the parent
exits when all have. A worker that dies is reported and started again under the same node id
(a new process, so a new instance: the others see the old one dead and its users' clients
resume through any worker); one that keeps dying soon after its start is restarted after a
growing delay, so a crash loop does not spin.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from .config import Settings

#: How a worker serves: `cli.serve_settings` (passed in, so this module does not import the CLI).
Serve = Callable[..., int]

log = logging.getLogger("cursorshare")


class WorkersRefused(SystemExit):
    """Settings that cannot run several workers."""


def check(settings: Settings) -> None:
    """Refuse settings with which workers could not share their users."""
    if settings.workers < 1:
        raise WorkersRefused("--workers must be at least 1")
    if settings.workers > 1 and not settings.redis_url:
        raise WorkersRefused(
            f"--workers {settings.workers} needs --redis-url: workers are separate processes "
            "and share rooms and sessions only through the Redis backplane"
        )
    if settings.workers > 1 and settings.port == 0:
        raise WorkersRefused("--workers needs a fixed --port (with 0 each would get its own)")


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: one worker, its own node id on the backplane."""
    base = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
    return dataclasses.replace(settings, workers=1, node_id=f"{base}-w{index}")


#: Exit status of a server that cannot listen on its address (port taken by another program, host
#: unknown): the same for every worker and every retry, so the parent stops instead of
#: restarting it forever.
EXIT_CANNOT_LISTEN = 2

#: A worker that lived this long was healthy: its next restart is immediate again.
HEALTHY_AFTER = 10.0
#: Restart delays of a worker that keeps dying sooner: doubling from the first to the last.
RESTART_DELAY_MIN = 0.5
RESTART_DELAY_MAX = 30.0


def _work(serve: Serve, settings: Settings) -> None:
    serve(settings, reuse_port=True)


class _Slot:
    """Worker ``index``: its current process, and when to start the next one if it died."""

    def __init__(self, index: int, spawn: Callable[[int], multiprocessing.process.BaseProcess]):
        self.index = index
        self._spawn = spawn
        self.process = spawn(index)
        self.started = 0.0
        self.delay = 0.0  # before the next restart (0: at once)
        self.due: float | None = None  # when a dead worker starts again

    def start(self) -> None:
        self.process.start()
        self.started = time.monotonic()
        self.due = None

    def died(self) -> float:
        """Schedule the restart; returns its delay."""
        if time.monotonic() - self.started >= HEALTHY_AFTER:
            self.delay = 0.0
        else:
            self.delay = min(RESTART_DELAY_MAX, max(RESTART_DELAY_MIN, self.delay * 2))
        self.due = time.monotonic() + self.delay
        self.process = self._spawn(self.index)
        return self.delay


def run(settings: Settings, serve: Serve) -> int:
    """Start the workers, each running ``serve`` (a module-level function, so the spawned
    process can import it), restart those that die, and wait for them all after SIGTERM or
    SIGINT; returns the exit status (`EXIT_CANNOT_LISTEN` if a worker could not listen, 1 if
    any died on its own meanwhile)."""
    check(settings)
    context = multiprocessing.get_context("spawn")  # nothing of the parent's loop is copied

    def spawn(index: int) -> multiprocessing.process.BaseProcess:
        return context.Process(
            target=_work, args=(serve, worker_settings(settings, index)), name=f"worker-{index}"
        )

    slots = [_Slot(i, spawn) for i in range(1, settings.workers + 1)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for slot in slots:
            pid = slot.process.pid
            if pid is not None and slot.process.exitcode is None:
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in slots:
            slot.start()
        print(
            f"cursorshare: {len(slots)} workers on port {settings.port} "
            f"(pids {', '.join(str(slot.process.pid) for slot in slots)})",
            flush=True,
        )
        failed = False
        status: int | None = None  # set when the workers cannot run at all
        while True:
            # Deaths first: a worker may die before it was ever waited on (at its start).
            for slot in [s for s in slots if s.due is None and s.process.exitcode is not None]:
                if stopping:
                    continue
                failed = True
                dead = slot.process
                if dead.exitcode == EXIT_CANNOT_LISTEN:
                    log.error("%s cannot listen on port %d: stopping", dead.name, settings.port)
                    status = EXIT_CANNOT_LISTEN
                    stop(signal.SIGTERM, None)
                    continue
                delay = slot.died()
                log.error(
                    "%s (pid %s) exited with status %s; %d workers still serve; restarting it"
                    " in %.1f s",
                    dead.name,
                    dead.pid,
                    dead.exitcode,
                    sum(1 for s in slots if s.due is None and s.process.exitcode is None),
                    delay,
                )
            now = time.monotonic()
            for slot in slots:
                if not stopping and slot.due is not None and slot.due <= now:
                    slot.start()
                    log.warning("%s started again (pid %s)", slot.process.name, slot.process.pid)
            running = [s for s in slots if s.due is None and s.process.exitcode is None]
            waiting = [] if stopping else [s for s in slots if s.due is not None]
            if not stopping and len(running) + len(waiting) < len(slots):
                continue  # one died as it started: its restart is scheduled first
            if not running and not waiting:
                return status if status is not None else 1 if failed else 0
            timeout = min((s.due - now for s in waiting if s.due is not None), default=None)
            multiprocessing.connection.wait(
                [s.process.sentinel for s in running], None if timeout is None else max(0, timeout)
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
