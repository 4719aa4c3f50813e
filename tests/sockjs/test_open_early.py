"""The `o` frame goes out as soon as the first receiver attaches, not after the handler's OPEN.

sockjs-client gives each transport a connect timeout of a few hundred milliseconds plus the
round trip (sockjs-client lib/main.js `_transportTimeout`: ``timeoutMs = 300 + rtt`` scaled by
the transport's round trips) and moves on when `o` is late; sockjs-node writes `o` when the
session starts, whatever the app does. An app whose OPEN awaits slow work (the cursor app reads a
resume record from Redis) must therefore not hold `o` back. The handler still sees its events in
order: OPEN first, and a message or close arriving meanwhile waits until OPEN has returned.

Here the handler's OPEN blocks on an `asyncio.Event` the test sets only after the client has `o`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cursorshare.sockjs import MsgType, Session, SockjsMessage, add_endpoint
from cursorshare.sockjs.messages import CloseReason

TIMEOUT = 5.0
PRELUDE = b"h" * 2048 + b"\n"

OPEN_RETURNED = "open returned"


class GatedApp:
    """A handler whose OPEN waits for `gate`; it logs what it sees, and when OPEN returns."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.log: list[Any] = []
        self.changed = asyncio.Event()

    async def handler(self, msg: SockjsMessage, session: Session) -> None:
        self._note(msg.type)
        if msg.type is MsgType.OPEN:
            await self.gate.wait()
            self._note(OPEN_RETURNED)
        elif msg.type is MsgType.MESSAGE:
            session.send(str(msg.data))

    def _note(self, what: Any) -> None:
        self.log.append(what)
        self.changed.set()

    async def wait_for(self, what: Any) -> None:
        async def until_seen() -> None:
            while what not in self.log:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until_seen(), TIMEOUT)


@pytest.fixture
async def gated() -> AsyncIterator[GatedApp]:
    app = GatedApp()
    yield app
    app.gate.set()  # a failed test must not leave OPEN waiting


@pytest.fixture
async def base_url(aiohttp_server: Any, gated: GatedApp) -> AsyncIterator[str]:
    app = web.Application()
    add_endpoint(app, gated.handler, prefix="/gated", disconnect_delay=0.5)
    server = await aiohttp_server(app)
    yield str(server.make_url(f"/gated/000/{uuid.uuid4()}"))
    gated.gate.set()  # before the server stops: it waits for its handlers


async def test_xhr_poll_gets_o_while_open_is_still_running(gated, base_url):
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(TIMEOUT), http.post(base_url + "/xhr") as r:
            body = await r.read()
        assert body == b"o\n"
        assert gated.log == [MsgType.OPEN]  # the handler is still in OPEN
        gated.gate.set()
        await gated.wait_for(OPEN_RETURNED)


async def test_xhr_streaming_gets_o_while_open_is_still_running(gated, base_url):
    async with (
        aiohttp.ClientSession() as http,
        asyncio.timeout(TIMEOUT),
        http.post(base_url + "/xhr_streaming") as r,
    ):
        assert await r.content.readexactly(len(PRELUDE)) == PRELUDE
        assert await r.content.readline() == b"o\n"
        assert gated.log == [MsgType.OPEN]
        gated.gate.set()
        await gated.wait_for(OPEN_RETURNED)


async def test_websocket_gets_o_while_open_is_still_running_and_messages_wait(gated, base_url):
    async with aiohttp.ClientSession() as http, http.ws_connect(base_url + "/websocket") as ws:
        assert (await ws.receive_str(timeout=TIMEOUT)) == "o"
        assert gated.log == [MsgType.OPEN]
        await ws.send_str('["hello"]')
        gated.gate.set()
        assert (await ws.receive_str(timeout=TIMEOUT)) == 'a["hello"]'
    assert gated.log[:3] == [MsgType.OPEN, OPEN_RETURNED, MsgType.MESSAGE]


async def test_websocket_closed_during_open_gives_close_after_open(gated, base_url):
    async with aiohttp.ClientSession() as http, http.ws_connect(base_url + "/websocket") as ws:
        assert (await ws.receive_str(timeout=TIMEOUT)) == "o"
        await ws.close()
    gated.gate.set()
    await gated.wait_for(MsgType.CLOSED)
    assert gated.log == [MsgType.OPEN, OPEN_RETURNED, MsgType.CLOSE, MsgType.CLOSED]


async def test_xhr_send_during_open_is_answered_after_open(gated, base_url):
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(TIMEOUT), http.post(base_url + "/xhr") as r:
            assert await r.read() == b"o\n"
        send = asyncio.create_task(http.post(base_url + "/xhr_send", data=b'["x"]'))
        # Answered once OPEN has returned (the message reaches the handler after it).
        gated.gate.set()
        response = await asyncio.wait_for(send, TIMEOUT)
        assert response.status == 204
        response.release()
        async with http.post(base_url + "/xhr") as r:
            assert await asyncio.wait_for(r.read(), TIMEOUT) == b'a["x"]\n'
    assert gated.log == [MsgType.OPEN, OPEN_RETURNED, MsgType.MESSAGE]


# -- the session itself, driven step by step: what arrives during OPEN provably waits ------------


class FakeReceiver:
    """A receiving connection that only records being woken."""

    ends_session = False

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1

    def write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        pass

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        pass


async def _opened_session(gated: GatedApp) -> Session:
    manager = add_endpoint(web.Application(), gated.handler, prefix="/unit")
    session = manager.create_http(str(uuid.uuid4()), transport="xhr", request=None)
    assert await asyncio.wait_for(session.connect(FakeReceiver()), TIMEOUT)
    assert session.next_frame() == b"o"
    await gated.wait_for(MsgType.OPEN)
    return session


async def test_message_delivered_during_open_reaches_the_handler_after_open(gated):
    session = await _opened_session(gated)
    delivery = asyncio.create_task(session.deliver(["first", "second"]))
    await asyncio.sleep(0)  # one loop turn: the delivery runs until it waits for OPEN
    assert not delivery.done()
    assert gated.log == [MsgType.OPEN]
    gated.gate.set()
    await asyncio.wait_for(delivery, TIMEOUT)
    assert gated.log == [MsgType.OPEN, OPEN_RETURNED, MsgType.MESSAGE, MsgType.MESSAGE]


async def test_close_during_open_reaches_the_handler_after_open(gated):
    session = await _opened_session(gated)
    session.close()
    session.expire()
    await asyncio.sleep(0)  # one loop turn: the lifecycle events wait for OPEN
    assert gated.log == [MsgType.OPEN]
    gated.gate.set()
    await gated.wait_for(MsgType.CLOSED)
    assert gated.log == [MsgType.OPEN, OPEN_RETURNED, MsgType.CLOSE, MsgType.CLOSED]


async def test_a_cancelled_delivery_does_not_cancel_open(gated):
    session = await _opened_session(gated)
    delivery = asyncio.create_task(session.deliver(["lost"]))
    await asyncio.sleep(0)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivery
    gated.gate.set()
    await gated.wait_for(OPEN_RETURNED)


async def test_open_that_raises_is_logged_and_the_session_goes_on(caplog):
    seen: list[Any] = []

    async def handler(msg: SockjsMessage, session: Session) -> None:
        seen.append(msg.type)
        if msg.type is MsgType.OPEN:
            raise RuntimeError("backend down")

    manager = add_endpoint(web.Application(), handler, prefix="/unit")
    session = manager.create_http(str(uuid.uuid4()), transport="xhr", request=None)
    assert await session.connect(FakeReceiver())
    await asyncio.wait_for(session.deliver(["after"]), TIMEOUT)
    assert seen == [MsgType.OPEN, MsgType.MESSAGE]
    assert "sockjs handler failed on open" in caplog.text


async def test_shutdown_does_not_hang_on_an_open_that_never_returns(gated):
    """CLOSE and CLOSED wait for OPEN, and shutdown waits for them: an OPEN stuck on a dead
    backend is cancelled after `shutdown_open_timeout`, and the handler still sees the close."""
    manager = add_endpoint(web.Application(), gated.handler, prefix="/unit")
    manager.shutdown_open_timeout = 0.05  # the gate is never opened: OPEN never returns
    session = manager.create_http(str(uuid.uuid4()), transport="xhr", request=None)
    assert await session.connect(FakeReceiver())
    await gated.wait_for(MsgType.OPEN)
    await asyncio.wait_for(manager.shutdown(), TIMEOUT)
    assert gated.log == [MsgType.OPEN, MsgType.CLOSE, MsgType.CLOSED]
    assert len(manager) == 0
