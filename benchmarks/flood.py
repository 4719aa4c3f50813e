"""Flooder isolation: does one websocket flooding frames hurt a well-behaved room?

Starts ``python -m cursorshare serve`` on a free port. A victim pair joins room ``victims``
(tutorial flavour: moves are passed through to everyone): the sender moves at 30 Hz with a
timestamp and a sequence number in each move, the watcher measures the latency of every move
it sees and the share of moves it sees (coverage). Each phase runs ``--seconds``: first
without a flooder, then once per frame kind with a flooder process in room ``flood`` sending
that kind as fast as its socket takes it, reconnecting whenever the server closes it.

    .venv/bin/python benchmarks/flood.py [--seconds 5] [--kinds pong,continuation]

Prints one table row per phase. Bounded: about (1 + kinds) * (seconds + 2) seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

KINDS = ("empty-text", "empty-binary", "empty-array", "ping", "pong", "continuation")
MOVE_HZ = 30


def _masked(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + mask + body


FLOOD_FRAMES = {
    "empty-text": _masked(0x1),
    "empty-binary": _masked(0x2),
    "empty-array": _masked(0x1, b"[]"),
    "ping": _masked(0x9),
    "pong": _masked(0xA),
    "continuation": _masked(0x0, fin=False),
}


# --------------------------------------------------------------------------- the flooder


async def _flood_once(port: int, kind: str, until: float) -> tuple[int, int | None]:
    """One connection flooding ``kind``; (bytes written, close code the server sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = f"/ws/000/{uuid.uuid4().hex}/websocket?room=flood"
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    if kind == "continuation":
        writer.write(_masked(0x1, b"[", fin=False))
    batch = FLOOD_FRAMES[kind] * 2000
    code: int | None = None

    async def read_close() -> None:
        nonlocal code
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            payload = await reader.readexactly(length)
            if first & 0x0F == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return

    closer = asyncio.ensure_future(read_close())
    sent = 0
    try:
        while time.monotonic() < until and not closer.done():
            writer.write(batch)
            await writer.drain()
            sent += len(batch)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        closer.cancel()
        writer.close()
    return sent, code


async def flooder(port: int, kind: str, seconds: float) -> None:
    until = time.monotonic() + seconds
    connections, frames, codes = 0, 0, []
    while time.monotonic() < until:
        try:
            sent, code = await _flood_once(port, kind, until)
        except (ConnectionError, asyncio.IncompleteReadError):
            continue
        connections += 1
        frames += sent // len(FLOOD_FRAMES[kind])
        if code is not None:
            codes.append(code)
    print(json.dumps({"connections": connections, "frames": frames, "codes": sorted(set(codes))}))


# --------------------------------------------------------------------------- the victims


@dataclass
class Phase:
    name: str
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    flood: dict[str, Any] = field(default_factory=dict)


async def victims(port: int, phase: Phase, seconds: float) -> None:
    base = f"ws://127.0.0.1:{port}/ws/000"
    async with aiohttp.ClientSession() as http:
        sender = await http.ws_connect(f"{base}/{uuid.uuid4().hex}/websocket?room=victims")
        watcher = await http.ws_connect(f"{base}/{uuid.uuid4().hex}/websocket?room=victims")

        async def watch() -> None:
            async for msg in watcher:
                if msg.type is not aiohttp.WSMsgType.TEXT or not msg.data.startswith("a"):
                    continue
                now = time.monotonic() * 1000
                for item in json.loads(msg.data[1:]):
                    move = json.loads(item) if isinstance(item, str) else item
                    for one in move if isinstance(move, list) else [move]:
                        if isinstance(one, dict) and "n" in one and one.get("bench") == 1:
                            phase.latencies_ms.append(now - one["t"])
                            phase.seen.add(one["n"])

        watching = asyncio.ensure_future(watch())
        start = time.monotonic()
        for n in range(int(seconds * MOVE_HZ)):
            delay = start + n / MOVE_HZ - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            move = {"x": n % 500, "y": 7, "n": n, "t": time.monotonic() * 1000, "bench": 1}
            await sender.send_str(json.dumps([json.dumps(move)]))
            phase.sent += 1
        await asyncio.sleep(1.0)  # the last moves' way back
        watching.cancel()
        await sender.close()
        await watcher.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_up(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("cursorshare serve did not come up")
            await asyncio.sleep(0.1)


async def run_phase(port: int, kind: str | None, seconds: float) -> Phase:
    phase = Phase(kind or "no flooder")
    process = None
    if kind is not None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flood", kind, "--port", str(port),
            "--seconds", str(seconds + 1), stdout=subprocess.PIPE,
        )
        await asyncio.sleep(0.5)  # let the flood reach full speed before measuring
    await victims(port, phase, seconds)
    if process is not None:
        out, _ = await process.communicate()
        phase.flood = json.loads(out.decode() or "{}")
    return phase


def _row(phase: Phase) -> str:
    lat = sorted(phase.latencies_ms)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    coverage = 100 * len(phase.seen) / phase.sent if phase.sent else 0.0
    flood = phase.flood
    frames = flood.get("frames", "")
    conns = flood.get("connections", "")
    codes = ",".join(str(c) for c in flood.get("codes", []))
    return (
        f"| {phase.name} | {p50:.1f} | {p99:.1f} | {coverage:.1f} % | {frames} | {conns} | "
        f"{codes} |"
    )


async def main(args: argparse.Namespace) -> None:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cursorshare", "serve", "--port", str(port), "--log-level", "error",
    )
    try:
        await _wait_up(port)
        kinds = [k for k in args.kinds.split(",") if k] if args.kinds else list(KINDS)
        print(f"victim pair at {MOVE_HZ} Hz for {args.seconds:g} s per phase\n")
        print("| flooder sends | victim p50 ms | victim p99 ms | coverage | flood frames "
              "sent | flooder connections | close codes |")
        print("|---|---|---|---|---|---|---|")
        for kind in [None, *kinds]:
            print(_row(await run_phase(port, kind, args.seconds)), flush=True)
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kinds", default="", help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--flood", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.flood:
        asyncio.run(flooder(arguments.port, arguments.flood, arguments.seconds))
    else:
        asyncio.run(main(arguments))
