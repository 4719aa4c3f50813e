"""CPU per request of cursorshare's own share of the HTTP transports, in one process.

    python -m benchmarks.hotpath [--rooms 100] [--members 5] [--rounds 10]

Drives the real endpoint handlers (`xhr_send`, `xhr`) with aiohttp's mocked requests, no
sockets: every member of every room sends one tutorial move, the hub flushes, every member
polls once and gets its room's moves. What is timed (`time.process_time`, so other programs
of the machine barely disturb it) is what runs in cursorshare's code per request, plus the
aiohttp `Response` it builds; aiohttp's HTTP parsing and writing, the same for any handler,
are left out. Run it on two commits to compare them: it uses only APIs both have.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from cursorshare.config import Settings
from cursorshare.server import HUB, SOCKJS, build_app
from cursorshare.sockjs.transports.xhr import xhr, xhr_send


class Body:
    """The part of aiohttp's StreamReader that reading a request body uses."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def readany(self) -> bytes:
        data, self._data = self._data, b""
        return data

    async def read(self) -> bytes:
        return await self.readany()


def request(method: str, session: str, name: str, room: str, body: bytes = b"") -> Any:
    headers = CIMultiDict({"Origin": "http://127.0.0.1:8080", "Content-Length": str(len(body))})
    if body:
        headers["Content-Type"] = "text/plain"
    return make_mocked_request(
        method,
        f"/ws/000/{session}/{name}?room={room}",
        headers=headers,
        match_info={"server": "000", "session": session},
        payload=Body(body),
    )


def move(client: int, seq: int) -> bytes:
    message = orjson.dumps({"x": 100 + seq % 50, "y": 200, "t": 1234.5, "s": seq, "c": client})
    return orjson.dumps([message.decode()])


async def run(rooms: int, members: int, rounds: int) -> dict[str, float]:
    app = build_app(Settings(max_sessions=10**7, max_sessions_per_address=10**7))
    manager, hub = app[SOCKJS], app[HUB]
    await hub.start()
    clients = [(f"s{i}", f"r{i % rooms}") for i in range(rooms * members)]
    for sid, room in clients:  # open every session: its first poll answers `o`
        response = await xhr(manager, request("POST", sid, "xhr", room))
        assert response.body == b"o\n", response.body
    hub.flush()
    for sid, room in clients:  # the joins
        await xhr(manager, request("POST", sid, "xhr", room))
    gc.collect()
    gc.disable()
    send_cpu = poll_cpu = flush_cpu = 0.0
    delivered = 0
    for seq in range(rounds):
        sends = [request("POST", sid, "xhr_send", room, move(i, seq)) for i, (sid, room) in
                 enumerate(clients)]
        polls = [request("POST", sid, "xhr", room) for sid, room in clients]
        start = time.process_time()
        for req in sends:
            response = await xhr_send(manager, req)
            assert response.status == 204, response.status
        send_cpu += time.process_time() - start
        start = time.process_time()
        hub.flush()
        flush_cpu += time.process_time() - start
        start = time.process_time()
        for req in polls:
            response = await xhr(manager, req)
            delivered += response.body.count(b'\\"s\\"')
        poll_cpu += time.process_time() - start
    gc.enable()
    await hub.stop()
    requests = rounds * len(clients)
    expected = rounds * len(clients) * members
    assert delivered == expected, (delivered, expected)
    return {
        "xhr_send_us": 1e6 * send_cpu / requests,
        "flush_us_per_move": 1e6 * flush_cpu / requests,
        "poll_us": 1e6 * poll_cpu / requests,
        "per_move_us": 1e6 * (send_cpu + flush_cpu + poll_cpu) / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is printed")
    args = parser.parse_args()
    results = [asyncio.run(run(args.rooms, args.members, args.rounds)) for _ in range(args.repeat)]
    best = {key: min(r[key] for r in results) for key in results[0]}
    print(" ".join(f"{key}={value:.1f}" for key, value in best.items()))


if __name__ == "__main__":
    main()
