#!/usr/bin/env python3
"""Bounded soak: connect/disconnect cycles per transport against a cursorshare subprocess.

    python scripts/soak.py                       # 10 000 cycles per transport
    python scripts/soak.py --cycles 2000 --out soak.md

Starts `python -m cursorshare serve` on 127.0.0.1 (a free port, a short disconnect_delay),
then for each transport runs N cycles, a few at a time and at most --rate a second: every
cycle leaves a session behind for about disconnect_delay, all from one address, and past 500
of them (the default max_sessions_per_address) the server rightly answers 503.

A cycle opens a v2 session in one of ten rooms, waits for the `o` frame and goes away the way
a closed tab does: websockets and streams are dropped, polling clients stop polling (their
session times out after disconnect_delay). The server's RSS and open file descriptors are
sampled at the start, every 1000 cycles and at the end (after the transport's sessions have
expired). Afterwards no session may be left (`/healthz` "sessions" and the sum of `/metrics`
`cursorshare_sessions`); the script exits 1 if one is, or if cycles failed.

Prints a markdown table per run (and writes it to --out when given). Not part of the test suite:
`tests/hardening/test_soak.py` is the small in-process version.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

# The repository root, for the server helper the test suites use too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerExited, ServerProcess, free_port

TRANSPORTS = (
    "websocket",
    "xhr-streaming",
    "eventsource",
    "xhr-polling",
    "jsonp-polling",
    "htmlfile",
)
MIB = 1024 * 1024
CYCLE_TIMEOUT = 10.0
SAMPLE_EVERY = 1000

Cycle = Callable[[aiohttp.ClientSession, str, str], Awaitable[None]]


# --------------------------------------------------------------------------- one cycle each


def _session_url(base: str) -> str:
    return f"{base}/{secrets.randbelow(1000):03d}/{secrets.token_hex(8)}"


async def _expect_line(response: aiohttp.ClientResponse, wanted: bytes) -> None:
    """Read lines until one equals ``wanted`` (bounded by the cycle's timeout)."""
    while True:
        line = await response.content.readline()
        if not line:
            raise ConnectionError(f"stream ended before {wanted!r}")
        if line.strip() == wanted:
            return


async def websocket_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    url = _session_url(base).replace("http://", "ws://", 1) + "/websocket?" + query
    async with http.ws_connect(url) as ws:
        message = await ws.receive()
        if message.data != "o":
            raise ConnectionError(f"websocket: {message!r}")


async def xhr_streaming_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    async with http.post(_session_url(base) + "/xhr_streaming?" + query) as response:
        response.raise_for_status()
        await _expect_line(response, b"o")
        response.close()  # drop the stream, as a closed tab does


async def eventsource_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    async with http.get(_session_url(base) + "/eventsource?" + query) as response:
        response.raise_for_status()
        await _expect_line(response, b"data: o")
        response.close()


async def htmlfile_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    async with http.get(_session_url(base) + "/htmlfile?c=cb&" + query) as response:
        response.raise_for_status()
        while b'p("o");' not in await response.content.readline():
            if response.content.at_eof():
                raise ConnectionError("htmlfile ended before the open frame")
        response.close()


async def xhr_polling_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    async with http.post(_session_url(base) + "/xhr?" + query) as response:
        if await response.text() != "o\n":
            raise ConnectionError(f"xhr: {response.status}")


async def jsonp_polling_cycle(http: aiohttp.ClientSession, base: str, query: str) -> None:
    async with http.get(_session_url(base) + "/jsonp?c=cb&" + query) as response:
        if await response.text() != '/**/cb("o");\r\n':
            raise ConnectionError(f"jsonp: {response.status}")


CYCLES: dict[str, Cycle] = {
    "websocket": websocket_cycle,
    "xhr-streaming": xhr_streaming_cycle,
    "eventsource": eventsource_cycle,
    "xhr-polling": xhr_polling_cycle,
    "jsonp-polling": jsonp_polling_cycle,
    "htmlfile": htmlfile_cycle,
}


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    process: ServerProcess
    ps: psutil.Process

    @property
    def url(self) -> str:
        return self.process.url

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / MIB

    def fds(self) -> int:
        return self.ps.num_fds()


async def start_server(port: int, disconnect_delay: float) -> Server:
    process = ServerProcess.cursorshare(
        "--disconnect-delay", str(disconnect_delay), "--log-level", "warning", port=port
    )
    try:
        await process.astart(within=30)
    except (ServerExited, TimeoutError) as exc:
        raise SystemExit(f"the server did not come up: {exc}") from None
    return Server(process, psutil.Process(process.pid))


async def stop_server(server: Server) -> int:
    return await server.process.astop() or 0


async def sessions_left(http: aiohttp.ClientSession, server: Server) -> tuple[int, int]:
    """Live sessions as /healthz and /metrics report them."""
    async with http.get(server.url + "/healthz") as response:
        health = int((await response.json())["sessions"])
    async with http.get(server.url + "/metrics") as response:
        text = await response.text()
    metric = 0
    for line in text.splitlines():
        if line.startswith("cursorshare_sessions{") or line.startswith("cursorshare_sessions "):
            metric += int(float(line.rsplit(" ", 1)[1]))
    return health, metric


# --------------------------------------------------------------------------- a run


@dataclass
class Result:
    transport: str
    cycles: int = 0
    failures: int = 0
    seconds: float = 0.0
    rss: list[float] = field(default_factory=list)  # start, every SAMPLE_EVERY, end
    fds_start: int = 0
    fds_end: int = 0
    left_healthz: int = -1
    left_metrics: int = -1
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.left_healthz == 0 and self.left_metrics == 0 and self.failures == 0


async def soak_transport(
    server: Server,
    transport: str,
    cycles: int,
    concurrency: int,
    rate: float,
    disconnect_delay: float,
    deadline: float,
) -> Result:
    result = Result(transport)
    result.rss.append(server.rss_mib())
    result.fds_start = server.fds()
    base = server.url + "/ws"
    cycle = CYCLES[transport]
    next_index = 0
    interval = 1 / rate
    next_slot = time.monotonic()

    async def pace() -> None:
        """At most ``rate`` cycles start per second (shared by the workers)."""
        nonlocal next_slot
        now = time.monotonic()
        slot = max(next_slot, now)
        next_slot = slot + interval
        if slot > now:
            await asyncio.sleep(slot - now)

    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal next_index
            while next_index < cycles and time.monotonic() < deadline:
                index = next_index
                next_index += 1
                await pace()
                query = f"v=2&room=soak{index % 10}"
                try:
                    async with asyncio.timeout(CYCLE_TIMEOUT):
                        await cycle(http, base, query)
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    result.failures += 1
                    if isinstance(exc, aiohttp.ClientResponseError):
                        kind = f"HTTP {exc.status}"
                    else:
                        kind = f"{type(exc).__name__}: {str(exc)[:80]}"
                    result.errors[kind] += 1
                result.cycles += 1
                if result.cycles % SAMPLE_EVERY == 0:
                    result.rss.append(server.rss_mib())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.monotonic() - started
        # Polling sessions expire disconnect_delay after their last poll.
        settle = time.monotonic() + disconnect_delay + 10
        while True:
            result.left_healthz, result.left_metrics = await sessions_left(http, server)
            if result.left_healthz == result.left_metrics == 0 or time.monotonic() > settle:
                break
            await asyncio.sleep(0.2)
    result.rss.append(server.rss_mib())
    result.fds_end = server.fds()
    return result


def table(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        f"Soak: {args.cycles} cycles per transport, concurrency {args.concurrency}, "
        f"at most {args.rate:.0f} cycles/s, disconnect_delay {args.disconnect_delay}s, "
        "server `python -m cursorshare serve` "
        f"(Python {sys.version.split()[0]}, pid-sampled RSS).",
        "",
        "| transport | cycles | failures | duration s | cycles/s | RSS start MiB "
        "| RSS end MiB | RSS delta MiB | fds start/end | sessions left |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = r.cycles / r.seconds if r.seconds else 0.0
        left = (
            r.left_healthz
            if r.left_healthz == r.left_metrics
            else f"{r.left_healthz}/{r.left_metrics}"
        )
        lines.append(
            f"| {r.transport} | {r.cycles} | {r.failures} | {r.seconds:.1f} | {rate:.0f} "
            f"| {r.rss[0]:.1f} | {r.rss[-1]:.1f} | {r.rss[-1] - r.rss[0]:+.1f} "
            f"| {r.fds_start}/{r.fds_end} | {left} |"
        )
    lines += ["", f"RSS samples (MiB; start, every {SAMPLE_EVERY} cycles, end after expiry):", ""]
    for r in results:
        lines.append(f"- {r.transport}: " + ", ".join(f"{v:.1f}" for v in r.rss))
    errors = [
        f"- {r.transport}: {count} x {error}"
        for r in results
        for error, count in r.errors.most_common(3)
    ]
    if errors:
        lines += ["", "Failures (most common per transport):", "", *errors]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    port = args.port or free_port()
    server = await start_server(port, args.disconnect_delay)
    deadline = time.monotonic() + args.max_seconds
    results: list[Result] = []
    try:
        for transport in args.transports:
            result = await soak_transport(
                server,
                transport,
                args.cycles,
                args.concurrency,
                args.rate,
                args.disconnect_delay,
                deadline,
            )
            results.append(result)
            print(
                f"{transport}: {result.cycles} cycles in {result.seconds:.1f}s, "
                f"{result.failures} failures, sessions left {result.left_healthz}",
                file=sys.stderr,
                flush=True,
            )
            if time.monotonic() > deadline:
                print("max-seconds reached: stopping early", file=sys.stderr)
                break
    finally:
        code = await stop_server(server)
    report = table(results, args)
    print(report)
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, report + "\n")
    if code != 0:
        print(f"server exited with {code}", file=sys.stderr)
    done = all(r.cycles == args.cycles for r in results) and len(results) == len(args.transports)
    return 0 if done and all(r.ok for r in results) and code == 0 else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="cycles per transport")
    parser.add_argument("--concurrency", type=int, default=16, help="cycles in flight at once")
    parser.add_argument(
        "--transports",
        type=lambda s: tuple(t for t in s.split(",") if t),
        default=TRANSPORTS,
        help=f"comma-separated, from {','.join(TRANSPORTS)}",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=400.0,
        help="most cycles started per second; every cycle leaves a session for about "
        "disconnect_delay, and all come from one address (max_sessions_per_address is 500)",
    )
    parser.add_argument("--disconnect-delay", type=float, default=0.5)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--out", help="also write the markdown report here")
    args = parser.parse_args(argv)
    unknown = set(args.transports) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports: {sorted(unknown)}")
    if args.cycles <= 0 or args.concurrency <= 0 or args.rate <= 0:
        parser.error("--cycles, --concurrency and --rate must be positive")
    if args.rate * (args.disconnect_delay + 0.25) > 400:
        print(
            "warning: --rate x --disconnect-delay may keep more than 500 sessions alive from "
            "127.0.0.1, the default max_sessions_per_address: expect 503 refusals",
            file=sys.stderr,
        )
    return args


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
