"""`cursorshare serve --workers N`: N server processes on one port, sharing rooms through Redis.

Each worker is a whole node (its own event loop, hub, sessions and node id) listening on the
same address with ``SO_REUSEPORT``: the kernel spreads incoming connections over the workers,
so a session's requests may reach any of them, and the session directory (which needs the
Redis backplane) lets each serve them. No balancer is needed in front.

The parent only starts the workers and stops them: SIGTERM or SIGINT is passed on to every
worker, each closes its sessions and says goodbye to Redis, and the parent exits when all
have. A worker that dies is reported; the others go on serving (its users' clients reconnect
to them).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
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


def _work(serve: Serve, settings: Settings) -> None:
    serve(settings, reuse_port=True)


def run(settings: Settings, serve: Serve) -> int:
    """Start the workers, each running ``serve`` (a module-level function, so the spawned
    process can import it), and wait for them; returns the exit status."""
    check(settings)
    context = multiprocessing.get_context("spawn")  # nothing of the parent's loop is copied
    workers = [
        context.Process(
            target=_work, args=(serve, worker_settings(settings, i)), name=f"worker-{i}"
        )
        for i in range(1, settings.workers + 1)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        print(
            f"cursorshare: {len(workers)} workers on port {settings.port} "
            f"(pids {', '.join(str(w.pid) for w in workers)})",
            flush=True,
        )
        running = list(workers)
        failed = False
        while running:
            multiprocessing.connection.wait([w.sentinel for w in running])
            for worker in [w for w in running if w.exitcode is not None]:
                running.remove(worker)
                if not stopping:
                    failed = True
                    log.error(
                        "%s (pid %s) exited with status %s; %d workers still serve",
                        worker.name,
                        worker.pid,
                        worker.exitcode,
                        len(running),
                    )
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
