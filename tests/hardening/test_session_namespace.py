"""One namespace per session (issue #10, findings 2 and 3).

A websocket session (framed or raw) can never be addressed by an HTTP transport URL, however
the id is encoded; raw websocket ids are unguessable; session caps and `/healthz` count every
live session exactly, whatever ids clients choose.
"""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest
from aiohttp import web

from cursorshare.config import Settings
from cursorshare.sockjs import MsgType, Session, SockjsMessage, add_endpoint

from .conftest import HTTP_RECEIVERS, TIMEOUT, Serve, Served, wait_until

# How the old keys (`<id>#ws<N>`) and ours (`ws:<token>`) could be spelled in a URL.
ENCODINGS = ("{sid}%23ws0", "{sid}%23ws1", "{sid}%2523ws0", "ws%3A{sid}", "{sid}")

Events = list[tuple[Session, SockjsMessage]]


@pytest.fixture
async def recording(serve: Serve) -> tuple[Served, Events]:
    """An echo endpoint that records every event with its session."""
    events: Events = []

    async def handler(msg: SockjsMessage, session: Session) -> None:
        events.append((session, msg))
        if msg.type is MsgType.MESSAGE:
            session.send(str(msg.data))

    app = web.Application()
    manager = add_endpoint(app, handler, prefix="/echo", disconnect_delay=0.3)
    return await serve(app, manager, "/echo"), events


def _messages(events: Events) -> list[object]:
    return [msg.data for _, msg in events if msg.type is MsgType.MESSAGE]


async def _echo(ws: aiohttp.ClientWebSocketResponse, text: str, *, framed: bool) -> None:
    """Round trip ``text``; nothing but heartbeats may come before it (no injection)."""
    await ws.send_str(f'["{text}"]' if framed else text)
    while True:
        msg = await ws.receive(TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        if msg.data == "h":
            continue
        assert msg.data == (f'a["{text}"]' if framed else text), msg.data
        return


@pytest.mark.parametrize("spelling", ENCODINGS)
async def test_framed_websocket_session_is_unreachable_over_http(
    recording: tuple[Served, Events], spelling: str
) -> None:
    served, events = recording
    sid = uuid.uuid4().hex
    path = "/000/" + spelling.format(sid=sid)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(served.ws_url(f"/000/{sid}/websocket"))
        assert (await ws.receive(TIMEOUT)).data == "o"
        # Sending: never delivered to the websocket's session.
        async with http.post(served.url(path + "/xhr_send"), data=b'["injected"]') as r:
            assert r.status == 404, (path, r.status)
        # Receiving: never attaches to it (404 for ids outside the alphabet; a separate HTTP
        # session for the bare id, which websockets never share).
        async with http.post(served.url(path + "/xhr")) as r:
            body = await r.read()
            assert r.status == 404 or body == b"o\n", (path, r.status, body)
        await _echo(ws, "mine", framed=True)
        assert "injected" not in _messages(events)
        opened = [s for s, m in events if m.type is MsgType.OPEN and s.transport == "websocket"]
        assert len(opened) == 1 and opened[0].state.value == "open"
        await ws.close()


async def test_raw_websocket_ids_are_unguessable_and_unreachable(
    recording: tuple[Served, Events],
) -> None:
    served, events = recording
    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(served.ws_url("/websocket")) for _ in range(3)]
        for ws in sockets:
            await _echo(ws, "hello", framed=False)
        ids = [s.id for s, m in events if m.type is MsgType.OPEN]
        assert len(set(ids)) == 3, ids
        for session_id in ids:
            # 128 random bits, URL-safe; no counter to count along.
            assert re.fullmatch(r"[A-Za-z0-9_\-]{22,}", session_id), session_id
        # The old keys `raw#ws<N>`, and the ids themselves, reach nothing over HTTP.
        for target in [f"raw%23ws{n}" for n in range(3)] + ids:
            async with http.post(served.url(f"/0/{target}/xhr_send"), data=b'["x"]') as r:
                assert r.status == 404, (target, r.status)
        for ws in sockets:
            await _echo(ws, "still mine", framed=False)
        assert "x" not in _messages(events)
        for ws in sockets:
            await ws.close()


@pytest.mark.parametrize("receiver", HTTP_RECEIVERS)
async def test_ids_outside_the_alphabet_are_404_on_every_session_route(
    echo_server, receiver: str
) -> None:
    served = await echo_server()
    query = "?c=cb" if receiver in ("jsonp", "htmlfile") else ""
    method = "GET" if receiver in ("eventsource", "htmlfile", "jsonp") else "POST"
    bad = ["a%23b", "a%2Fb", "a%3Ab", "%E2%82%AC", "a%00b", "a" * 129]
    async with aiohttp.ClientSession() as http:
        for session_id in bad:
            for path in (f"/000/{session_id}/{receiver}", f"/{session_id}/abc/{receiver}"):
                async with http.request(method, served.url(path + query)) as r:
                    assert r.status == 404, (path, r.status)
        assert len(served.manager) == 0


async def _healthz_sessions(http: aiohttp.ClientSession, served: Served) -> int:
    async with http.get(served.origin + "/healthz") as r:
        return int((await r.json())["sessions"])


async def test_caps_and_healthz_stay_exact_under_colliding_ids(cursor_server) -> None:
    # Issue #10 finding 3: an HTTP session created under a key colliding with a websocket's
    # removed the websocket's entry when it expired; counts went to 0 with websockets live.
    served = await cursor_server(Settings(max_sessions=3, disconnect_delay=0.3))
    manager = served.manager
    sid = uuid.uuid4().hex
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(served.ws_url(f"/000/{sid}/websocket"))
        second = await http.ws_connect(served.ws_url(f"/000/{sid}/websocket"))  # reuse: allowed
        for ws in (first, second):
            assert (await ws.receive(TIMEOUT)).data == "o"
        async with http.post(served.url(f"/000/{sid}%23ws0/xhr")) as r:
            assert r.status in (404, 405)  # no session route (the app's static files: 405)
        async with http.post(served.url(f"/000/{sid}/xhr")) as r:  # same id, HTTP: its own
            assert (r.status, await r.read()) == (200, b"o\n")
        assert await _healthz_sessions(http, served) == 3
        refused = await http.ws_connect(served.ws_url(f"/000/{sid}/websocket"))
        frames = [(await refused.receive(TIMEOUT)).data for _ in range(2)]
        assert 'c[3010,"Too many sessions"]' in frames, frames
        await refused.close()
        # The HTTP session expires (no poll for disconnect_delay): only its own entry goes.
        await wait_until(lambda: manager.http_session(sid) is None, what="HTTP session expiry")
        assert await _healthz_sessions(http, served) == 2
        assert manager.count_by_transport() == {"websocket": 2}
        assert not first.closed and not second.closed
        third = await http.ws_connect(served.ws_url(f"/000/{sid}/websocket"))
        assert (await third.receive(TIMEOUT)).data == "o"
        assert await _healthz_sessions(http, served) == 3
        for ws in (first, second, third):
            await ws.close()
        await wait_until(lambda: len(manager) == 0, what="every session forgotten")
        assert await _healthz_sessions(http, served) == 0
