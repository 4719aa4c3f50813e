"""STOMP over SockJS with clients others wrote: @stomp/stompjs 7 on sockjs-client 1.6.1 in node,
pinned in tests/interop/package-lock.json, against our SockJS server carrying a STOMP broker
(tests/interop/stomp_broker.py).

Issue #11 wants every transport the sockjs-node reference carries STOMP on to carry it here:
websocket, xhr-streaming, xhr-polling and eventsource. Each one must bring every message back
byte for byte (non-ASCII, a NUL, STOMP-escaped headers, 48 KiB) with its receipt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cursorshare.sockjs import add_endpoint
from tests.interop.stomp_broker import StompBroker
from tests.support.clients import SessionClosed, make_client
from tests.support.npm import npm_ci

HERE = Path(__file__).resolve().parent
TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling", "eventsource")
#: Upper bound on one node run (it normally takes about a second).
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def interop_packages() -> Path:
    """The pinned client packages, installed once (again only when the lock file changed)."""
    return npm_ci(HERE)


@pytest.fixture
async def stomp_url() -> AsyncIterator[str]:
    app = web.Application()
    add_endpoint(app, StompBroker(), prefix="/stomp")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/stomp"))
    finally:
        await server.close()


async def run_node(directory: Path, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        *args,
        cwd=directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    # Split on "\n" only: splitlines() would also cut at the U+2028 inside a message.
    lines = stdout.decode().rstrip("\n").split("\n")
    assert lines[-1], f"node printed nothing (exit {process.returncode}): {stderr.decode()[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stompjs_round_trip_over_each_transport(
    interop_packages: Path, stomp_url: str, transport: str
) -> None:
    result = await run_node(interop_packages, "stomp_roundtrip.mjs", stomp_url, transport)

    assert "error" not in result, result["error"]
    assert result["transport"] == transport  # no fallback to another transport
    assert result["version"] == "1.2"
    sent, received = result["sent"], result["received"]
    assert [m["body"] for m in received] == [m["body"] for m in sent]
    for out, back in zip(sent, received, strict=True):
        for name, value in out["headers"].items():
            assert back["headers"][name] == value
        assert back["headers"]["destination"] == f"/topic/roundtrip-{transport}"
        assert back["headers"]["content-length"] == str(len(out["body"].encode()))
    assert sorted(result["receipts"]) == [f"r-{i}" for i in range(len(sent))]


async def test_a_client_breaking_stomp_gets_error_and_is_closed_alone(stomp_url: str) -> None:
    """The broker's own bad-input path, so a failing interop run is not the broker's doing:
    a frame without its required header gets ERROR and a close, and a subscriber on another
    session keeps receiving."""
    connect = "CONNECT\naccept-version:1.2\nhost:x\n\n\0"
    subscriber, breaker = make_client("websocket"), make_client("xhr-streaming")
    try:
        for client in (subscriber, breaker):
            await client.connect(stomp_url)
            await client.send(connect)
            assert (await client.recv()).startswith("CONNECTED\nversion:1.2\n")
        await subscriber.send("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:s\n\n\0")
        assert (await subscriber.recv()).startswith("RECEIPT\nreceipt-id:s\n")

        await breaker.send("SEND\ncontent-type:text/plain\n\nno destination\0")
        error = await breaker.recv()
        assert error.startswith("ERROR\nmessage:SEND without a destination header\n")
        with pytest.raises(SessionClosed) as closed:
            await breaker.recv()
        assert closed.value.closed_with == (3000, "STOMP protocol error")

        # Split across two SockJS messages, as a STOMP stream may be.
        await subscriber.send("SEND\ndestination:/q\ncontent-length:5\n\nst")
        await subscriber.send("ill\0")
        message = await subscriber.recv()
        assert message.startswith("MESSAGE\n")
        assert "\nsubscription:0\n" in message
        assert message.endswith("\n\nstill\0")
    finally:
        await subscriber.close()
        await breaker.close()
