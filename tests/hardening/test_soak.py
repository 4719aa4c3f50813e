"""A small soak: many connect/disconnect cycles per transport leave nothing behind.

200 cycles per transport against the real application in process, a few at a time. Each
cycle opens a session (waits for `o`), then goes away the way a closing tab does. Once
``disconnect_delay`` and the resume grace have passed, no session, room or cursor member may be
left, and the process holds no more file descriptors than before (connections are not leaking).
`scripts/soak.py` is the long version, against a server subprocess.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from cursorshare.config import Settings
from cursorshare.server import CURSORS, HUB
from tests.support.clients import make_client

from .conftest import TIMEOUT, Served, wait_until

CYCLES = 200
CONCURRENCY = 8
DISCONNECT_DELAY = 0.3
#: A v2 member whose session ended without a bye stays (reconnecting) this long.
RESUME_GRACE = 0.3


@pytest.mark.parametrize(
    "transport",
    ["websocket", "xhr-streaming", "eventsource", "xhr-polling", "jsonp-polling", "htmlfile"],
)
async def test_connect_disconnect_cycles_leave_nothing_behind(
    cursor_server, transport: str
) -> None:
    served: Served = await cursor_server(
        Settings(
            disconnect_delay=DISCONNECT_DELAY,
            heartbeat_delay=5,
            tick_ms=30,
            resume_grace=RESUME_GRACE,
        )
    )
    process = psutil.Process()
    fds_before = process.num_fds()
    opened = 0

    async def worker(first: int) -> None:
        nonlocal opened
        for cycle in range(first, CYCLES, CONCURRENCY):
            client = make_client(transport)
            try:
                query = f"v=2&room=soak{cycle % 5}" if cycle % 2 else f"room=soak{cycle % 5}"
                await client.connect(served.base_url, query=query, timeout=TIMEOUT)
                opened += 1
            finally:
                await asyncio.wait_for(client.close(), TIMEOUT)

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(CONCURRENCY))), timeout=60)
    assert opened == CYCLES
    hub = served.app[HUB]
    await wait_until(
        lambda: len(served.manager) == 0 and not hub.rooms and len(served.app[CURSORS]) == 0,
        DISCONNECT_DELAY + RESUME_GRACE + 1 + TIMEOUT,  # 1: the app's grace margin
        what=f"everything released after {CYCLES} {transport} cycles "
        f"(sessions {len(served.manager)}, rooms {list(hub.rooms)})",
    )
    assert served.manager.stats.sessions_refused == 0
    # Sockets of closed connections are gone too (a little slack for the loop's own).
    await wait_until(lambda: process.num_fds() <= fds_before + 8, TIMEOUT, what="fds released")
    assert time.monotonic() - started < 60
