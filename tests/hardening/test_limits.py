"""Per-endpoint limits: message size, queue size, rate, session caps and the origin allow-list.

Every limit is set low on a fresh echo endpoint (`echo_server(**options)`), then passed on
every input path that can pass it. Each test also checks that a well-behaved session of the
same endpoint keeps working: a limit hits the offender, never its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from cursorshare.sockjs import session as session_module
from cursorshare.sockjs.options import EndpointOptions
from tests.support.clients import SockJSClient

from .conftest import TIMEOUT, Connect, Served, echo_round_trip, wait_until

LIMIT = 1024  # max_message_size of the size tests


def sid() -> str:
    return secrets.token_hex(6)


async def open_xhr_session(http: aiohttp.ClientSession, served: Served, session: str) -> None:
    """Open a session with one xhr poll (answered `o` at once)."""
    async with http.post(served.url(f"/000/{session}/xhr")) as response:
        assert response.status == 200
        assert await response.text() == "o\n"


async def drain(client: SockJSClient, quiet: float = 0.4) -> list[str]:
    """Every message that arrives until nothing has come for ``quiet`` seconds."""
    out: list[str] = []
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline:
        try:
            out.append(await client.recv(quiet))
        except TimeoutError:
            break
    return out


def sockjs_frame(size: int) -> str:
    """A SockJS websocket frame (a JSON array of one string) of exactly ``size`` bytes."""
    return json.dumps(["x" * (size - 4)])


# --------------------------------------------------------------------------- message size


async def test_websocket_frame_over_the_limit_closes_1009(
    echo_server, connect: Connect, http: aiohttp.ClientSession
) -> None:
    served = await echo_server(max_message_size=LIMIT)
    neighbour = await connect("websocket", served.base_url)
    async with http.ws_connect(served.ws_url(f"/000/{sid()}/websocket")) as ws:
        assert (await ws.receive(TIMEOUT)).data == "o"
        await ws.send_str(sockjs_frame(LIMIT - 8))  # under the limit: delivered
        assert (await ws.receive(TIMEOUT)).data == "a" + sockjs_frame(LIMIT - 8)
        await ws.send_str(sockjs_frame(LIMIT + 1))
        message = await ws.receive(TIMEOUT)
        while message.type is aiohttp.WSMsgType.TEXT:  # a close frame may come first
            message = await ws.receive(TIMEOUT)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    await echo_round_trip(neighbour, "still here")
    await wait_until(lambda: len(served.manager) == 1, what="the oversize session removed")


async def test_raw_websocket_message_over_the_limit_closes_1009(
    echo_server, http: aiohttp.ClientSession
) -> None:
    served = await echo_server(max_message_size=LIMIT)
    async with http.ws_connect(served.ws_url("/websocket")) as neighbour:
        async with http.ws_connect(served.ws_url("/websocket")) as ws:
            await ws.send_str("y" * (LIMIT - 8))
            assert (await ws.receive(TIMEOUT)).data == "y" * (LIMIT - 8)
            await ws.send_bytes(b"y" * (LIMIT + 1))
            message = await ws.receive(TIMEOUT)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009
        await neighbour.send_str("ping")
        assert (await neighbour.receive(TIMEOUT)).data == "ping"


@pytest.mark.parametrize("path", ["/000/{sid}/websocket", "/websocket"])
async def test_websocket_oversize_close_is_recorded_as_1009(
    echo_server, http: aiohttp.ClientSession, path: str
) -> None:
    """The session of an oversize frame ends with the documented reason, not 1002.

    `messages.MESSAGE_TOO_BIG` (1009 "Message too big") is what the handler's CLOSE event,
    `Session.close_reason` and the `cursorshare_session_closes{code="1009"}` metric should
    show; operators tell floods from network drops by it.
    """
    served = await echo_server(max_message_size=LIMIT)
    async with http.ws_connect(served.ws_url(path.format(sid=sid()))) as ws:
        await wait_until(lambda: len(served.manager) == 1, what="session created")
        session = next(iter(served.manager.values()))
        await ws.send_str("[" + '"z",' * LIMIT + '"z"]')
        message = await ws.receive(TIMEOUT)
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await ws.receive(TIMEOUT)
        assert ws.close_code == 1009
    await wait_until(lambda: len(served.manager) == 0, what="session removed")
    assert session.close_reason == (1009, "Message too big"), (
        f"session closed with {session.close_reason}; closes by code: {served.manager.stats.closes}"
    )
    assert served.manager.stats.closes[1009] == 1


@pytest.mark.parametrize("path", ["websocket", "raw-websocket", "xhr_send", "jsonp_send"])
async def test_a_payload_of_exactly_max_message_size_is_accepted(
    echo_server, connect: Connect, http: aiohttp.ClientSession, path: str
) -> None:
    """max_message_size is the largest payload accepted, on every input path alike.

    `read_body` refuses bodies *over* the limit; the websocket paths must agree.
    """
    served = await echo_server(max_message_size=LIMIT)
    if path == "xhr_send":
        client = await connect("xhr-polling", served.base_url)
        async with http.post(client.session_url + "/xhr_send", data=sockjs_frame(LIMIT)) as r:
            assert r.status == 204, await r.text()
        assert await client.recv(TIMEOUT) == "x" * (LIMIT - 4)
        return
    if path == "jsonp_send":
        client = await connect("jsonp-polling", served.base_url)
        prefix = b"d=" + quote(json.dumps(["x"]), safe="").encode()
        fill = LIMIT - len(prefix)
        body = b"d=" + quote(json.dumps(["x" * (1 + fill)]), safe="").encode()
        assert len(body) == LIMIT
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(client.session_url + "/jsonp_send", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
        assert await client.recv(TIMEOUT) == "x" * (1 + fill)
        return
    url = served.ws_url(f"/000/{sid()}/websocket" if path == "websocket" else "/websocket")
    async with http.ws_connect(url) as ws:
        if path == "websocket":
            assert (await ws.receive(TIMEOUT)).data == "o"
            payload, echoed = sockjs_frame(LIMIT), "a" + sockjs_frame(LIMIT)
        else:
            payload = echoed = "y" * LIMIT
        await ws.send_str(payload)
        message = await ws.receive(TIMEOUT)
        assert message.type is aiohttp.WSMsgType.TEXT, (
            f"a {LIMIT}-byte frame with max_message_size={LIMIT} was refused: "
            f"{message.type.name} {message.data!r}"
        )
        assert message.data == echoed


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", ["xhr_send", "jsonp_send"])
async def test_send_body_over_the_limit_is_413(
    echo_server, connect: Connect, http: aiohttp.ClientSession, route: str, chunked: bool
) -> None:
    served = await echo_server(max_message_size=LIMIT)
    neighbour = await connect("xhr-polling", served.base_url)
    victim = await connect("xhr-polling", served.base_url)
    url = victim.session_url + "/" + route
    if route == "jsonp_send":
        # A form field `d` holding the frame: the limit is on the body as sent.
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        small = b"d=" + quote(json.dumps(["fits"]), safe="").encode()
        big = b"d=" + quote(json.dumps(["w" * LIMIT]), safe="").encode()
    else:
        headers = {"Content-Type": "text/plain;charset=UTF-8"}
        small = sockjs_frame(LIMIT).encode()  # exactly the limit
        big = sockjs_frame(LIMIT + 1).encode()
    assert len(big) > LIMIT

    async with http.post(url, data=_chunked(small) if chunked else small, headers=headers) as r:
        assert r.status in (200, 204), await r.text()
    async with http.post(url, data=_chunked(big) if chunked else big, headers=headers) as r:
        assert r.status == 413
        text = await r.text()
        assert text == "Payload too large."
        assert "Traceback" not in text
    # The session survives its refused send, and so does its neighbour.
    await echo_round_trip(victim, "after 413")
    await echo_round_trip(neighbour, "neighbour fine")


async def test_queue_over_max_queue_bytes_closes_3008(
    echo_server, connect: Connect, http: aiohttp.ClientSession
) -> None:
    """A polling client that stops polling while messages pile up is cut off (3008)."""
    served = await echo_server(max_queue_bytes=16 * 1024, disconnect_delay=5.0)
    neighbour = await connect("xhr-polling", served.base_url)
    session = sid()
    await open_xhr_session(http, served, session)  # answered `o`; no poll pending now
    piece = json.dumps(["q" * 1500] * 4)
    for _ in range(4):  # 4 x 6 KB of echoes queued for a client that is not polling
        async with http.post(served.url(f"/000/{session}/xhr_send"), data=piece) as response:
            assert response.status == 204
    assert served.manager.stats.closes[3008] == 1
    # What was queued before the cut (at most max_queue_bytes and one frame) comes first.
    answers = []
    for _ in range(3):
        async with http.post(served.url(f"/000/{session}/xhr")) as response:
            answers.append(await response.text())
        if answers[-1].startswith("c"):
            break
    assert answers[-1] == 'c[3008,"Slow consumer"]\n'
    assert sum(len(a) for a in answers[:-1]) <= 16 * 1024 + len(piece) + 16
    await echo_round_trip(neighbour, "unaffected")


# --------------------------------------------------------------------------- rate limit

RATE = 20  # max_messages_per_second of the rate tests; the bucket holds 2 s of it


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_excess_messages_are_dropped_and_counted(
    echo_server, connect: Connect, transport: str
) -> None:
    served = await echo_server(max_messages_per_second=RATE)
    neighbour = await connect(transport, served.base_url)
    client = await connect(transport, served.base_url)
    sent = [f"m{i}" for i in range(100)]  # 2.5 buckets at once: below the abuse rule
    await client.send_many(list(sent))
    delivered = await drain(client)
    stats = served.manager.stats
    assert 2 * RATE <= len(delivered) < len(sent), delivered
    assert delivered == sent[: len(delivered)], "the admitted messages are the first, in order"
    assert stats.messages_dropped == len(sent) - len(delivered)
    assert not client.ended, f"a short burst must not close the session: {client.closed_with}"
    # The bucket refills at RATE per second: a moment later, messages get through again.
    await asyncio.sleep(3 / RATE)
    await echo_round_trip(client, "refilled")
    await echo_round_trip(neighbour, "neighbour unaffected")


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_persistent_flood_is_closed_3009(
    echo_server, connect: Connect, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    # Abuse rule: more than RATE * ABUSE_SECONDS / 2 drops within ABUSE_SECONDS closes.
    monkeypatch.setattr(session_module, "ABUSE_SECONDS", 1.0)
    served = await echo_server(max_messages_per_second=RATE)
    neighbour = await connect(transport, served.base_url)
    client = await connect(transport, served.base_url)
    deadline = time.monotonic() + 5.0
    sent = 0
    while not client.ended and time.monotonic() < deadline:  # 10 messages every 50 ms
        try:
            await client.send_many([f"f{sent + i}" for i in range(10)])
        except (ConnectionError, AssertionError, aiohttp.ClientError):
            break  # the websocket is already closed under us
        sent += 10
        await asyncio.sleep(0.05)
    closed = await client.wait_closed(TIMEOUT)
    assert closed == (3009, "Rate limit exceeded")
    stats = served.manager.stats
    assert stats.closes[3009] == 1
    assert stats.messages_dropped > RATE * 1.0 / 2
    await echo_round_trip(neighbour, "neighbour unaffected")


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_a_60hz_cursor_loses_nothing_under_the_default_limit(
    echo_server, connect: Connect, transport: str
) -> None:
    served = await echo_server()
    assert (
        served.manager.options.max_messages_per_second == EndpointOptions().max_messages_per_second
    )
    client = await connect(transport, served.base_url)
    count = 120  # two seconds at 60 Hz, paced on a schedule so lag never bunches them up
    start = time.monotonic()
    for i in range(count):
        delay = start + i / 60 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send(f"p{i}")
    received: list[str] = []
    while len(received) < count:
        received.append(await client.recv(TIMEOUT))
    assert received == [f"p{i}" for i in range(count)]
    assert served.manager.stats.messages_dropped == 0
    assert not client.ended


# --------------------------------------------------------------------------- session caps

REFUSAL_TEXT = "Too many sessions."


async def assert_http_refused(http: aiohttp.ClientSession, served: Served) -> int:
    """Every receiving HTTP transport answers a new session with 503; how many were asked."""
    asked = 0
    for route in ("xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp"):
        method = "POST" if route.startswith("xhr") else "GET"
        url = served.url(f"/000/{sid()}/{route}")
        if route in ("htmlfile", "jsonp"):
            url += "?c=cb"
        async with http.request(method, url) as response:
            text = await response.text()
            assert response.status == 503, (route, response.status, text)
            assert text == REFUSAL_TEXT
            assert response.headers.get("Retry-After", "").isdigit(), dict(response.headers)
        asked += 1
    return asked


async def assert_websocket_refused(http: aiohttp.ClientSession, served: Served) -> int:
    async with http.ws_connect(served.ws_url(f"/000/{sid()}/websocket")) as ws:
        message = await ws.receive(TIMEOUT)
        assert message.data == 'c[3010,"Too many sessions"]'
        message = await ws.receive(TIMEOUT)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 3010
    async with http.ws_connect(served.ws_url("/websocket")) as ws:
        message = await ws.receive(TIMEOUT)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 3010
    return 2


async def test_max_sessions_refuses_the_next_session_until_one_expires(
    echo_server, connect: Connect, http: aiohttp.ClientSession
) -> None:
    served = await echo_server(max_sessions=3, disconnect_delay=0.3)
    polling = await connect("xhr-polling", served.base_url)
    streaming = await connect("xhr-streaming", served.base_url)
    ws = await connect("websocket", served.base_url)
    assert len(served.manager) == 3

    refused = await assert_http_refused(http, served)
    refused += await assert_websocket_refused(http, served)
    assert served.manager.stats.sessions_refused == refused
    assert len(served.manager) == 3
    for client in (polling, streaming, ws):
        await echo_round_trip(client, "unaffected")

    await polling.close()  # stops polling: the session expires after disconnect_delay
    await wait_until(lambda: len(served.manager) == 2, what="the abandoned session expired")
    newcomer = await connect("eventsource", served.base_url)
    await echo_round_trip(newcomer, "welcome back")


def _second_loopback_available() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


async def test_max_sessions_per_address(
    echo_server, connect: Connect, http: aiohttp.ClientSession
) -> None:
    served = await echo_server(max_sessions_per_address=2, disconnect_delay=0.3)
    first = await connect("xhr-polling", served.base_url)
    await connect("websocket", served.base_url)

    refused = await assert_http_refused(http, served)
    refused += await assert_websocket_refused(http, served)
    assert served.manager.stats.sessions_refused == refused

    if _second_loopback_available():  # another client address is not affected
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as other,
            other.post(served.url(f"/000/{sid()}/xhr")) as response,
        ):
            assert response.status == 200
            assert await response.text() == "o\n"
        assert len(served.manager) == 3

    await first.close()
    await wait_until(lambda: len(served.manager) <= 2, what="the abandoned session expired")
    newcomer = await connect("jsonp-polling", served.base_url)
    await echo_round_trip(newcomer, "accepted again")


# --------------------------------------------------------------------------- origins

GOOD = "http://good.example"
EVIL = "http://evil.example"


async def test_origin_allow_list(echo_server, http: aiohttp.ClientSession) -> None:
    served = await echo_server(allowed_origins=(GOOD,))

    # A page from another origin is refused on every route, before anything happens.
    for path in (f"/000/{sid()}/websocket", "/websocket"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(served.ws_url(path), origin=EVIL)
        assert refused.value.status == 403
    bad = {"Origin": EVIL}
    async with http.post(served.url(f"/000/{sid()}/xhr"), headers=bad) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    assert len(served.manager) == 0, "a refused origin must not create a session"
    async with http.get(served.url("/info"), headers=bad) as response:
        assert response.status == 403

    # The allowed origin works, with CORS headers naming it.
    good = {"Origin": GOOD}
    session = sid()
    async with http.post(served.url(f"/000/{session}/xhr"), headers=good) as response:
        assert response.status == 200
        assert await response.text() == "o\n"
        assert response.headers["Access-Control-Allow-Origin"] == GOOD
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    send_url = served.url(f"/000/{session}/xhr_send")
    async with http.post(send_url, data='["from evil"]', headers=bad) as response:
        assert response.status == 403
    async with http.post(send_url, data='["from good"]', headers=good) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == GOOD
    async with http.post(served.url(f"/000/{session}/xhr"), headers=good) as response:
        assert await response.text() == 'a["from good"]\n', "the refused send was not delivered"
    async with http.ws_connect(served.ws_url(f"/000/{sid()}/websocket"), origin=GOOD) as ws:
        assert (await ws.receive(TIMEOUT)).data == "o"

    # No Origin at all: non-browser clients and JSONP script tags.
    async with http.post(served.url(f"/000/{sid()}/xhr")) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    async with http.get(served.url(f"/000/{sid()}/jsonp?c=cb")) as response:
        assert response.status == 200
        assert await response.text() == '/**/cb("o");\r\n'
    async with http.ws_connect(served.ws_url("/websocket")) as ws:
        await ws.send_str("no origin")
        assert (await ws.receive(TIMEOUT)).data == "no origin"
