"""The cost of serving a session's requests on a node other than its owner (issue #15).

Starts redis-server and two cursorshare nodes (subprocesses on 127.0.0.1) and drives one
xhr-polling user of the cursor app: each update is one `xhr_send` of a move, then polls until
the user's own move comes back (the hub echoes it to its sender). Two runs:

- ``sticky``: every request goes to the node holding the session (what a hashing balancer does);
- ``forwarded``: the session lives on node A, every send and poll goes to node B.

Prints, per delivered update: latency (median, p90), the CPU time both nodes spent, and the
Redis commands processed; and the commands per forwarded send and per relayed poll.

    python -m benchmarks.forwarding [--updates 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def wait_up(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if (await response.json())["backplane"] == "up":
                        return
            except (aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


async def commands(redis: Redis) -> int:
    info = await redis.info("stats")
    return int(info["total_commands_processed"])


async def run(
    updates: int, forwarded: bool, ports: list[int], pids: list[int], redis: Redis
) -> dict[str, float]:
    owner, via = ports[0], ports[1] if forwarded else ports[0]
    sid = secrets.token_hex(6)
    base = "http://127.0.0.1:{}/ws/000/" + sid + "/{}"
    latencies: list[float] = []
    polls = 0
    async with aiohttp.ClientSession() as http:
        async with http.post(base.format(owner, "xhr") + "?v=2&room=bench") as response:
            assert await response.text() == "o\n"
        me = ""
        while not me:  # the welcome
            async with http.post(base.format(via, "xhr")) as response:
                for line in (await response.text()).splitlines():
                    if line.startswith("a"):
                        for message in orjson.loads(line[1:]):
                            body = orjson.loads(message)
                            me = body.get("id", me) if body.get("type") == "welcome" else me
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        commands0 = await commands(redis)
        for i in range(updates):
            x = round((i + 1) / (updates + 1), 6)
            start = time.perf_counter()
            payload = orjson.dumps([orjson.dumps({"type": "move", "x": x, "y": 0.5}).decode()])
            async with http.post(base.format(via, "xhr_send"), data=payload) as response:
                assert response.status == 204, await response.text()
            seen = False
            while not seen:
                polls += 1
                async with http.post(base.format(via, "xhr")) as response:
                    text = await response.text()
                seen = f'\\"x\\":{x}' in text or f'\\"x\\": {x}' in text
            latencies.append(time.perf_counter() - start)
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        spent = await commands(redis) - commands0
    latencies.sort()
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p90_ms": latencies[int(len(latencies) * 0.9)] * 1000,
        "cpu_ms_per_update": cpu / updates * 1000,
        "redis_commands_per_update": spent / updates,
        "polls_per_update": polls / updates,
    }


def spawn(command: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURSORSHARE_")}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)


async def measure(updates: int, redis_port: int, ports: list[int], pids: list[int]) -> None:
    for port in ports:
        await wait_up(f"http://127.0.0.1:{port}/healthz")
    redis = Redis(port=redis_port)
    results = {}
    for mode in ("sticky", "forwarded", "sticky", "forwarded"):  # twice: warm-up, then kept
        results[mode] = await run(updates, mode == "forwarded", ports, pids, redis)
    await redis.aclose()
    print(f"{'':28}" + "".join(f"{mode:>12}" for mode in results))
    for key in results["sticky"]:
        print(f"{key:28}" + "".join(f"{results[m][key]:12.2f}" for m in results))


def main(updates: int) -> None:
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"forwarding-{secrets.token_hex(3)}"
    tmp.mkdir()
    redis_port = free_port()
    procs = [
        spawn([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)])
    ]  # fmt: skip
    ports = [free_port(), free_port()]
    try:
        for name, port in zip(("a", "b"), ports, strict=True):
            procs.append(
                spawn([sys.executable, "-m", "cursorshare", "serve", "--port", str(port),
                       "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--node-id", name,
                       "--log-level", "warning"])
            )  # fmt: skip
        asyncio.run(measure(updates, redis_port, ports, [proc.pid for proc in procs[1:]]))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    main(parser.parse_args().updates)
