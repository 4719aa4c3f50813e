"""Clients that drop a stream mid-way: an everyday event, which must not be logged as an error.

Found by `scripts/soak.py`: a streaming receiver that writes a frame just as its client goes
away gets `ClientConnectionResetError` ("Cannot write to closing transport") from
`response.write`; `HttpReceiver.serve` re-raises it, so aiohttp treats it as a handler crash:
an ERROR "Error handling request" with a traceback in the server log (and an attempt to send
a 500 on the dead connection) for what is just a closed browser tab.

Each cycle opens a stream on an endpoint that broadcasts every 2 ms, reads a little of it and
drops the connection, so the drop often lands between two writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import aiohttp
import pytest

from .conftest import Served, wait_until

CYCLES = 100


@pytest.mark.parametrize("route", ["xhr_streaming", "eventsource", "htmlfile?c=cb"])
async def test_dropped_streams_are_not_logged_as_errors(
    echo_server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, route: str
) -> None:
    served: Served = await echo_server(disconnect_delay=0.2)
    stop = asyncio.Event()

    async def broadcast() -> None:
        while not stop.is_set():
            served.manager.broadcast("x" * 100)
            await asyncio.sleep(0.002)

    broadcaster = asyncio.create_task(broadcast())
    method = "POST" if route.startswith("xhr") else "GET"
    try:
        for _ in range(CYCLES):
            url = served.url(f"/000/{secrets.token_hex(6)}/{route}")
            async with http.request(method, url) as response:
                assert response.status == 200
                await response.content.read(3000)
                response.close()  # the tab is gone
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await broadcaster
    await wait_until(lambda: len(served.manager) == 0, what="dropped sessions expired")
    errors = [
        f"{r.name}: {r.getMessage()} ({r.exc_info[1]!r})" if r.exc_info else r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]
    assert not errors, f"{len(errors)} ERROR records for {CYCLES} dropped streams: {errors[:3]}"
