"""One load point (``run_load``): one or several generator processes on one clock.

With ``processes = 1`` the clients run in this process. With ``P > 1``, P worker processes are
started together (multiprocessing, spawn), worker ``w`` owning the clients ``i % P == w``.
Every process stamps and times moves on ``time.perf_counter()`` from one origin ``t0`` taken
here: on Linux it is CLOCK_MONOTONIC, one clock for the whole machine, so a move sent by one
process and received by another is timed correctly. Each worker opens its sessions and says
so; once all have, this process picks a start time shortly ahead and sends it to every
worker, so all schedules begin together. Meanwhile this process samples the server (CPU, RSS)
and the machine over the measured window, then merges the workers' results (``results``).

Timeline of a point: open every session (bounded concurrency per process), ``warmup`` seconds
of unmeasured load, the ``duration`` window, ``drain`` seconds without sends so moves in flight
can land, then every session is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from .generator import Part, PartResult, generate
from .probes import ServerProbe, machine_busy_seconds, pin_to_cpu, raise_nofile_limit, run_sync
from .results import LoadConfig, LoadResult, WindowSamples, observer_indices, summarize

__all__ = ["run_load"]

# How far ahead of "every worker is ready" the shared start time is set (s).
START_MARGIN = 0.3
# Seconds between two samples of the server's RSS during the window.
RSS_EVERY = 0.5


def _parts(config: LoadConfig, t0: float) -> list[Part]:
    n = config.clients
    p = max(1, min(config.processes, n))
    observers = set(observer_indices(n, config.observers))
    parts = []
    for w in range(p):
        indices = list(range(w, n, p))
        pin = config.pin_cpus[w % len(config.pin_cpus)] if config.pin_cpus else None
        parts.append(
            Part(
                url=config.url,
                transport=config.transport,
                clients=n,
                rooms=config.rooms,
                rate=config.rate,
                warmup=config.warmup,
                duration=config.duration,
                drain=config.drain,
                send_wait=config.send_wait,
                indices=indices,
                observers=[i for i in indices if i in observers],
                t0=t0,
                connect_concurrency=max(1, config.connect_concurrency // p),
                connect_timeout=config.connect_timeout,
                pin_cpu=pin,
            )
        )
    return parts


class _LocalChannel:
    """The in-process generator's channel: ready and go are two futures of this loop."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.is_ready: asyncio.Future[int] = loop.create_future()
        self.start: asyncio.Future[float] = loop.create_future()

    async def ready(self, opened: int) -> None:
        self.is_ready.set_result(opened)

    async def go(self) -> float:
        return await self.start


class _PipeChannel:
    """A worker process's channel: messages over its end of a pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def ready(self, opened: int) -> None:
        self.conn.send(("ready", opened))

    async def go(self) -> float:
        kind, start = await asyncio.to_thread(self.conn.recv)
        if kind != "go":
            raise RuntimeError(f"generator worker: unexpected message {kind!r}")
        return float(start)


def _worker_main(part: Part, conn: Connection) -> None:
    """Entry point of one generator worker process."""
    if part.pin_cpu is not None:
        pin_to_cpu(part.pin_cpu)
    raise_nofile_limit(4 * len(part.indices) + 256)
    try:
        result = run_sync(generate(part, _PipeChannel(conn)))
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        raise
    conn.send(("result", result))
    conn.close()


async def _sample_window(
    probe: ServerProbe | None, start: float, warmup: float, duration: float
) -> WindowSamples:
    """Sample the server and the machine from the window's start to its end."""
    samples = WindowSamples()
    await asyncio.sleep(max(0.0, start + warmup - time.perf_counter()))
    samples.start = time.perf_counter()
    busy0 = machine_busy_seconds()
    cpu0 = probe.cpu_seconds() if probe is not None else 0.0
    end = start + warmup + duration
    while probe is not None and time.perf_counter() < end - RSS_EVERY:
        samples.rss_samples.append(probe.rss_bytes())
        await asyncio.sleep(RSS_EVERY)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    samples.end = time.perf_counter()
    samples.machine_busy_seconds = machine_busy_seconds() - busy0
    if probe is not None:
        samples.server_cpu_seconds = probe.cpu_seconds() - cpu0
        samples.rss_samples.append(probe.rss_bytes())
    return samples


async def _run_local(part: Part, probe: ServerProbe | None) -> tuple[PartResult, WindowSamples]:
    channel = _LocalChannel()
    task = asyncio.create_task(generate(part, channel))
    waiter = asyncio.ensure_future(channel.is_ready)
    pending: set[asyncio.Future[Any]] = {task, waiter}
    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # it failed before it was ready
        waiter.cancel()
        return task.result(), WindowSamples()
    start = time.perf_counter() + START_MARGIN
    channel.start.set_result(start)
    samples = await _sample_window(probe, start, part.warmup, part.duration)
    return await task, samples


async def _recv(conn: Connection, within: float, what: str) -> Any:
    if not await asyncio.to_thread(conn.poll, within):
        raise TimeoutError(f"a generator worker sent nothing for {within:.0f} s ({what})")
    kind, value = conn.recv()
    if kind == "error":
        raise RuntimeError(f"a generator worker failed: {value}")
    return value


async def _run_workers(
    config: LoadConfig, parts: list[Part], probe: ServerProbe | None
) -> tuple[list[PartResult], WindowSamples]:
    ctx = multiprocessing.get_context("spawn")
    pipes = [ctx.Pipe() for _ in parts]
    procs = [
        ctx.Process(target=_worker_main, args=(part, child), daemon=True, name=f"bench-gen-{w}")
        for w, (part, (_, child)) in enumerate(zip(parts, pipes, strict=True))
    ]
    open_within = 60.0 + 2 * config.connect_timeout * (
        1 + config.clients / max(1, config.connect_concurrency)
    )
    try:
        for proc in procs:
            proc.start()
        for _, child in pipes:
            child.close()  # the worker holds its end; a dead worker then reads as EOF
        await asyncio.gather(*(_recv(conn, open_within, "opening") for conn, _ in pipes))
        start = time.perf_counter() + START_MARGIN
        for conn, _ in pipes:
            conn.send(("go", start))
        samples = await _sample_window(probe, start, config.warmup, config.duration)
        finish_within = 60.0 + config.drain + START_MARGIN
        results: list[PartResult] = list(
            await asyncio.gather(*(_recv(conn, finish_within, "results") for conn, _ in pipes))
        )
        return results, samples
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.join, 10.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for conn, _ in pipes:
            with contextlib.suppress(OSError):
                conn.close()


async def run_load(config: LoadConfig) -> LoadResult:
    """Run one load point and return its measurements."""
    if config.clients < 1 or config.rate <= 0 or config.duration <= 0:
        raise ValueError("clients >= 1, rate > 0 and duration > 0 are required")
    if config.rooms < 1 or config.processes < 1:
        raise ValueError("rooms >= 1 and processes >= 1 are required")
    probe = ServerProbe(config.server_pid) if config.server_pid else None
    parts = _parts(config, time.perf_counter())
    if len(parts) == 1:
        if parts[0].pin_cpu is not None:
            pin_to_cpu(parts[0].pin_cpu)
        raise_nofile_limit(4 * config.clients + 256)
        result, samples = await _run_local(parts[0], probe)
        return summarize(config, [result], samples)
    results, samples = await _run_workers(config, parts, probe)
    return summarize(config, results, samples)
