"""The load generator's CPU per HTTP request: aiohttp's ClientSession against leanhttp (issue #14).

Starts a trivial aiohttp server in a subprocess (pinned with ``--server-cpu``) that answers
``xhr_send`` with 204 and ``xhr`` with a 200 carrying one ``a[...]`` frame of two moves, as
the SockJS transports do. This process (pinned with ``--client-cpu``) runs ``--concurrency``
loops that each send one request and await its response, over keep-alive connections, for
``--seconds``, once with the client the load generator used before (an aiohttp
``ClientSession`` configured as it was) and once with ``cursorshare.bench.leanhttp.HttpPool``,
alternating, ``--repeat`` times. Prints, per client and request kind, the client's CPU time per
request (``time.process_time``, so other programs on the machine inflate it far less than they
inflate requests per second) and the requests per second.

    python -m benchmarks.generator_http [--seconds 5 --repeat 3 --concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop

from cursorshare.bench.leanhttp import HttpPool

SEND = (
    b'["{\\"x\\":500,\\"y\\":400,\\"t\\":12345.678,\\"s\\":42,\\"c\\":17}",'
    b'"{\\"x\\":510,\\"y\\":401,\\"t\\":12346.678,\\"s\\":43,\\"c\\":17}"]'
)
POLL_RESPONSE = b"a[" + SEND[1:-1] + b"]\n"
CONTENT_TYPE = "text/plain;charset=UTF-8"

SERVER = f"""
import sys
from aiohttp import web

async def send(request):
    await request.read()
    return web.Response(status=204)

async def poll(request):
    return web.Response(body={POLL_RESPONSE!r}, content_type="application/javascript")

app = web.Application()
app.router.add_post("/ws/000/bench/xhr_send", send)
app.router.add_post("/ws/000/bench/xhr", poll)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

Request = Callable[[], Awaitable[int]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


async def measure(request: Request, concurrency: int, seconds: float) -> tuple[float, float]:
    """(client CPU us per request, requests per second) of ``concurrency`` request loops."""
    stop = time.perf_counter() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            status = await request()
            assert status in (200, 204), status
            count += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return 1e6 * cpu / max(1, count), count / wall


async def run_aiohttp(
    base: str, kind: str, concurrency: int, seconds: float
) -> tuple[float, float]:
    # As the load generator had it (generator.connector(), ClientTimeout(total=30.0)).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def send() -> int:
            headers = {"Content-Type": CONTENT_TYPE}
            async with http.post(base + "/xhr_send", data=SEND, headers=headers) as resp:
                await resp.read()
                return resp.status

        async def poll() -> int:
            async with http.post(base + "/xhr", timeout=aiohttp.ClientTimeout()) as resp:
                await resp.read()
                return resp.status

        return await measure(send if kind == "send" else poll, concurrency, seconds)


async def run_lean(base: str, kind: str, concurrency: int, seconds: float) -> tuple[float, float]:
    async with HttpPool(base) as pool:
        send_head = pool.head("POST", base + "/xhr_send", CONTENT_TYPE)
        poll_request = pool.encode("POST", base + "/xhr")

        async def send() -> int:
            data = send_head + b"Content-Length: %d\r\n\r\n" % len(SEND) + SEND
            status, _ = await pool.request(data)
            return status

        async def poll() -> int:
            status, _ = await pool.request(poll_request, long=True)
            return status

        return await measure(send if kind == "send" else poll, concurrency, seconds)


async def main_async(args: argparse.Namespace, base: str) -> None:
    clients = {"aiohttp ClientSession": run_aiohttp, "leanhttp HttpPool": run_lean}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for kind in ("send", "poll"):
            for name, run in clients.items():
                results.setdefault((kind, name), []).append(
                    await run(base, kind, args.concurrency, args.seconds)
                )
    print(f"{args.concurrency} request loops, {args.seconds:g} s x {args.repeat} per client")
    print("| request | client | CPU us per request (median; runs) | requests/s (median) |")
    print("|---|---|---|---|")
    for (kind, name), runs in results.items():
        us = [u for u, _ in runs]
        rate = statistics.median(r for _, r in runs)
        each = ", ".join(f"{u:.0f}" for u in us)
        print(f"| {kind} | {name} | {statistics.median(us):.1f} ({each}) | {rate:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list; 'none': no pinning")
    parser.add_argument("--client-cpu", default="1", help="CPU for this process; 'none'")
    args = parser.parse_args()
    port = free_port()
    argv = [sys.executable, "-c", SERVER, str(port)]
    if args.server_cpu != "none" and shutil.which("taskset"):
        argv = ["taskset", "-c", args.server_cpu, *argv]
    if args.client_cpu != "none":
        os.sched_setaffinity(0, {int(args.client_cpu)})
    server = subprocess.Popen(argv)
    try:
        uvloop.run(wait_listening(port))
        uvloop.run(main_async(args, f"http://127.0.0.1:{port}/ws/000/bench"))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
