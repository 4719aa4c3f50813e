"""What unfinished requests cost the real server: prints a Markdown table (docs/benchmarks.md).

Starts `python -m cursorshare serve` (default settings) on a free 127.0.0.1 port, then:

1. opens 100 connections that each send an unfinished request with up to ~1 MiB of headers
   (8 000-byte header lines, the blank line never sent) and reports the server's RSS before
   and once every connection has sent all it could (the server may refuse early);
2. opens 400 slowloris connections (a partial head, then one more header line a second) and
   reports how long until the server has closed every one of them (capped at ``--cap``).

``--src DIR`` runs the server from another checkout's sources (e.g. an export of old main) to
compare. Usage: .venv/bin/python benchmarks/http_bounds.py [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time

import psutil

HEAD = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n"
LINE = b"X-Filler: " + b"a" * 7988 + b"\r\n"  # 8 000 bytes: under aiohttp's 8 190 per line
BIG_HEAD_BYTES = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


async def big_unfinished_request(port: int) -> tuple[asyncio.StreamWriter, int]:
    """Send up to ~1 MiB of headers without the blank line; the writer and bytes sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    with contextlib.suppress(ConnectionError):
        writer.write(HEAD)
        sent = len(HEAD)
        while sent + len(LINE) <= BIG_HEAD_BYTES and not reader.at_eof():
            writer.write(LINE)
            await writer.drain()
            sent += len(LINE)
            await asyncio.sleep(0)
    return writer, sent


async def slowloris(port: int, cap: float) -> float:
    """Seconds until the server closes this trickling connection (``cap`` if it never does)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEAD)
        while time.monotonic() - start < cap:
            try:
                if await asyncio.wait_for(reader.read(4096), 1.0) == b"":
                    return time.monotonic() - start
            except TimeoutError:
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Slow: 1\r\n")
            except ConnectionError:
                return time.monotonic() - start
        return cap
    finally:
        writer.close()


async def measure(port: int, server: psutil.Process, cap: float) -> list[tuple[str, str]]:
    rows = []
    before = rss_mib(server)
    held = await asyncio.gather(*(big_unfinished_request(port) for _ in range(100)))
    await asyncio.sleep(1.0)  # a figure, not a test: let the server's reads settle
    after = rss_mib(server)
    accepted = sum(sent for _, sent in held) / len(held) / 1024
    rows.append(("RSS before 100 unfinished ~1 MiB heads", f"{before:.1f} MiB"))
    rows.append(("RSS with them (sent before refusal or end)", f"{after:.1f} MiB"))
    rows.append(("bytes sent per connection, mean", f"{accepted:.0f} KiB"))
    for writer, _ in held:
        writer.close()
    await asyncio.sleep(1.0)
    start = time.monotonic()
    closed = await asyncio.gather(*(slowloris(port, cap) for _ in range(400)))
    rows.append(("400 slowloris: first closed after", f"{min(closed):.1f} s"))
    rows.append(("400 slowloris: last closed after", f"{max(closed):.1f} s (cap {cap:g} s)"))
    rows.append(("400 slowloris: wall time", f"{time.monotonic() - start:.1f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", help="run the server from this source directory instead")
    parser.add_argument("--cap", type=float, default=120.0, help="longest wait per slowloris")
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ, CURSORSHARE_PORT=str(port), CURSORSHARE_LOG_LEVEL="error")
    if args.src:
        env["PYTHONPATH"] = args.src
    proc = subprocess.Popen(
        [sys.executable, "-m", "cursorshare", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=args.src or None,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "serving http://..."
        rows = asyncio.run(measure(port, psutil.Process(proc.pid), args.cap))
    finally:
        proc.terminate()
        proc.wait(20)
    source = f" from {args.src}" if args.src else ""
    print(f"HTTP bounds, server `python -m cursorshare serve`{source}")
    print(f"(Python {sys.version.split()[0]}, default settings)\n")
    print("| measure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
