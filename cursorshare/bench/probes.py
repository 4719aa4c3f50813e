"""What the load generator measures about processes and the machine, and how it runs itself.

psutil is needed only to watch a server process (``--server-pid``); it is the ``bench`` extra
(``pip install cursorshare[bench]``) and imported only when a probe is made, so the server
and the load generator run without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "ServerProbe",
    "machine_busy_seconds",
    "own_cpu_seconds",
    "pin_to_cpu",
    "raise_nofile_limit",
    "run_sync",
]

T = TypeVar("T")


class ServerProbe:
    """CPU time and RSS of a server process and its children, through psutil."""

    def __init__(self, pid: int) -> None:
        try:
            import psutil
        except ImportError:
            raise RuntimeError(
                "watching a server process (--server-pid) needs psutil: "
                "pip install 'cursorshare[bench]'"
            ) from None
        self._psutil = psutil
        self.proc = psutil.Process(pid)

    def _procs(self) -> list[Any]:
        procs: list[Any] = [self.proc]
        with contextlib.suppress(self._psutil.Error):
            procs.extend(self.proc.children(recursive=True))
        return procs

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._procs():
            with contextlib.suppress(self._psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for p in self._procs():
            with contextlib.suppress(self._psutil.Error):
                total += int(p.memory_info().rss)
        return total


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine (all CPUs) since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...
    busy = sum(int(v) for i, v in enumerate(fields[1:9]) if i not in (3, 4))
    return busy / ticks


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) this process used so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raise_nofile_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return int(soft)
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return int(soft)


def pin_to_cpu(cpu: int) -> bool:
    """Pin this process to one CPU; False when the machine has no such CPU."""
    try:
        if cpu not in os.sched_getaffinity(0) and cpu >= (os.cpu_count() or 1):
            return False
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError, ValueError):
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
