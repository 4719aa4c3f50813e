"""Session lifecycle beyond the spec's letter: heartbeats on every framed transport, expiry of
HTTP sessions, concurrent receivers, aborted requests and app-side close (spec background:
Protocol.test_simpleSession comments, HandlingClose).

`/fast` has heartbeat_delay=0.3 s and disconnect_delay=0.5 s; `/slow` has 25 s and 5 s.
Sending `close-default` / `close-custom` to them makes the app close the session.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from cursorshare.sockjs import EndpointOptions, MsgType, add_endpoint

TIMEOUT = 5.0
PRELUDE = b"h" * 2048 + b"\n"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def recv_text(ws, within=TIMEOUT):
    msg = await asyncio.wait_for(ws.receive(), within)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return msg.data


# ----------------------------------------------------------------------------- defaults


def test_an_endpoint_without_settings_has_the_spec_timings_and_response_limit():
    # Protocol.test_simpleSession: a session times out after 5 s without a receiving
    # connection and a heartbeat goes out every 25 s; XhrStreaming.test_response_limit: a
    # streaming request is closed after 128 KiB by default (4096 B only on the test server).
    manager = add_endpoint(web.Application(), _ignore, prefix="/defaults")
    assert manager.options == EndpointOptions()
    assert manager.options.disconnect_delay == 5.0
    assert manager.options.heartbeat_delay == 25.0
    assert manager.options.response_limit == 128 * 1024


async def _ignore(msg, session):
    pass


# ----------------------------------------------------------------------------- heartbeats


async def test_xhr_poll_with_nothing_queued_returns_heartbeat(fetch, sid):
    url = f"/fast/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    r = await fetch("POST", url + "/xhr", within=3.0)
    assert r.status == 200
    assert r.body == b"h\n"


async def test_jsonp_poll_with_nothing_queued_returns_heartbeat(fetch, sid):
    url = f"/fast/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'
    r = await fetch("GET", url + "/jsonp?c=x", within=3.0)
    assert r.status == 200
    assert r.body == b'/**/x("h");\r\n'


async def test_xhr_streaming_sends_heartbeat_frames(open_raw, sid):
    conn = await open_raw()
    await conn.request_head("POST", f"/fast/000/{sid}/xhr_streaming")
    assert await conn.read_chunk() == PRELUDE
    assert await conn.read_chunk() == b"o\n"
    assert await conn.read_chunk(within=3.0) == b"h\n"
    assert await conn.read_chunk(within=3.0) == b"h\n"


async def test_eventsource_sends_heartbeat_frames(open_raw, sid):
    conn = await open_raw()
    await conn.request_head("GET", f"/fast/000/{sid}/eventsource")
    assert await conn.read_chunk() == b"\r\n"
    assert await conn.read_chunk() == b"data: o\r\n\r\n"
    assert await conn.read_chunk(within=3.0) == b"data: h\r\n\r\n"


async def test_htmlfile_sends_heartbeat_frames(open_raw, sid):
    conn = await open_raw()
    await conn.request_head("GET", f"/fast/000/{sid}/htmlfile?c=cb")
    assert await conn.read_chunk()  # prelude
    assert await conn.read_chunk() == b'<script>\np("o");\n</script>\r\n'
    assert await conn.read_chunk(within=3.0) == b'<script>\np("h");\n</script>\r\n'


async def test_websocket_sends_heartbeat_frames(ws_connect, sid):
    ws = await ws_connect(f"/fast/000/{sid}/websocket")
    assert await recv_text(ws) == "o"
    assert await recv_text(ws, within=3.0) == "h"
    assert await recv_text(ws, within=3.0) == "h"


# ----------------------------------------------------------------------------- expiry


async def test_http_session_expires_after_disconnect_delay(fetch, recorder, sid):
    url = f"/fast/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.OPEN), within=1.0)

    # No receiving request: after disconnect_delay (0.5 s) the session is gone.
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSED), within=3.0)
    types = recorder.types(sid)
    assert types == [MsgType.OPEN, MsgType.CLOSE, MsgType.CLOSED], types

    r = await fetch("POST", url + "/xhr_send", body='["x"]')
    assert r.status == 404

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    assert r.body == b"o\n"  # a brand new session
    assert recorder.types(sid).count(MsgType.OPEN) == 2


async def test_http_session_expires_after_last_streaming_request_ended(
    open_raw, fetch, recorder, sid
):
    url = f"/fast/000/{sid}"
    conn = await open_raw()
    await conn.request_head("POST", url + "/xhr_streaming")
    assert await conn.read_chunk() == PRELUDE
    assert await conn.read_chunk() == b"o\n"
    await conn.close()  # the client went away
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSED), within=3.0)
    assert (await fetch("POST", url + "/xhr_send", body='["x"]')).status == 404


async def test_session_with_open_receiving_request_does_not_expire(open_raw, fetch, recorder, sid):
    url = f"/fast/000/{sid}"
    conn = await open_raw()
    await conn.request_head("POST", url + "/xhr_streaming")
    assert await conn.read_chunk() == PRELUDE
    assert await conn.read_chunk() == b"o\n"

    # Stay connected for well over disconnect_delay, reading heartbeats.
    for _ in range(4):
        assert await conn.read_chunk(within=3.0) == b"h\n"
    assert not recorder.has(sid, MsgType.CLOSE)

    r = await fetch("POST", url + "/xhr_send", body='["still"]')
    assert r.status == 204
    while (chunk := await conn.read_chunk(within=3.0)) == b"h\n":
        pass
    assert chunk == b'a["still"]\n'


async def test_polling_session_stays_alive_while_client_keeps_polling(fetch, recorder, sid):
    url = f"/fast/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    for _ in range(4):  # each poll ends with a heartbeat after 0.3 s; about 1.2 s in all
        assert (await fetch("POST", url + "/xhr", within=3.0)).body == b"h\n"
    assert (await fetch("POST", url + "/xhr_send", body='["x"]')).status == 204
    assert (await fetch("POST", url + "/xhr")).body == b'a["x"]\n'
    assert not recorder.has(sid, MsgType.CLOSE)


# ----------------------------------------------------------------------------- concurrency


async def test_second_receiver_is_refused_and_first_keeps_working(open_raw, fetch, sid):
    url = f"/slow/000/{sid}"
    first = await open_raw()
    await first.request_head("POST", url + "/xhr_streaming")
    assert await first.read_chunk() == PRELUDE
    assert await first.read_chunk() == b"o\n"

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    assert r.body == b'c[2010,"Another connection still open"]\n'

    assert (await fetch("POST", url + "/xhr_send", body='["after"]')).status == 204
    assert await first.read_chunk() == b'a["after"]\n'


# ----------------------------------------------------------------------------- aborts


async def test_aborted_xhr_poll_is_noticed_at_once(open_raw, fetch, recorder, wait_receiving, sid):
    # /slow: heartbeat_delay=25 s, disconnect_delay=5 s, so only the abort itself can explain
    # a prompt CLOSE.
    url = f"/slow/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"

    pending = await open_raw()
    await pending.send_request("POST", url + "/xhr")
    await wait_receiving("slow", sid)  # the server parked the poll
    await pending.close()

    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSE), within=1.0)

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    assert r.body == b'c[1002,"Connection interrupted"]\n'


async def test_aborted_xhr_streaming_is_noticed_at_once(open_raw, fetch, recorder, sid):
    url = f"/slow/000/{sid}"
    conn = await open_raw()
    await conn.request_head("POST", url + "/xhr_streaming")
    assert await conn.read_chunk() == PRELUDE
    assert await conn.read_chunk() == b"o\n"
    await conn.close()

    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSE), within=1.0)

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    assert r.body == b'c[1002,"Connection interrupted"]\n'


async def test_aborted_eventsource_is_noticed_at_once(open_raw, fetch, recorder, sid):
    url = f"/slow/000/{sid}"
    conn = await open_raw()
    await conn.request_head("GET", url + "/eventsource")
    assert await conn.read_chunk() == b"\r\n"
    assert await conn.read_chunk() == b"data: o\r\n\r\n"
    await conn.close()

    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSE), within=1.0)
    r = await fetch("POST", url + "/xhr")
    assert r.body == b'c[1002,"Connection interrupted"]\n'


async def test_websocket_client_close_emits_close_and_closed(ws_connect, recorder, sid):
    ws = await ws_connect(f"/slow/000/{sid}/websocket")
    assert await recv_text(ws) == "o"
    await ws.close()
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSED), within=2.0)
    assert recorder.types(sid) == [MsgType.OPEN, MsgType.CLOSE, MsgType.CLOSED]


# ----------------------------------------------------------------------------- app close


async def test_app_close_default_is_go_away_and_repeated(fetch, sid):
    url = f"/slow/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    assert (await fetch("POST", url + "/xhr_send", body='["close-default"]')).status == 204
    for _ in range(2):
        r = await fetch("POST", url + "/xhr")
        assert r.status == 200
        assert r.body == b'c[3000,"Go away!"]\n'


async def test_app_close_with_custom_code_and_reason(fetch, recorder, sid):
    url = f"/slow/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    assert (await fetch("POST", url + "/xhr_send", body='["close-custom"]')).status == 204
    for _ in range(2):
        r = await fetch("POST", url + "/xhr")
        assert r.status == 200
        assert r.body == b'c[4001,"custom"]\n'
    assert recorder.has(sid, MsgType.CLOSE)


async def test_app_close_reaches_a_pending_poll(open_raw, fetch, wait_receiving, sid):
    url = f"/slow/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    pending = await open_raw()
    await pending.send_request("POST", url + "/xhr")
    await wait_receiving("slow", sid)
    assert (await fetch("POST", url + "/xhr_send", body='["close-default"]')).status == 204
    head = await pending.read_head()
    assert head.status == 200
    assert await pending.read_body(head, "POST") == b'c[3000,"Go away!"]\n'


async def test_app_close_on_jsonp(fetch, sid):
    url = f"/slow/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'
    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22close-custom%22%5D", headers=FORM)
    assert r.body == b"ok"
    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.body == b'/**/x("c[4001,\\"custom\\"]");\r\n'


async def test_app_close_on_websocket_with_custom_code(ws_connect, sid):
    ws = await ws_connect(f"/slow/000/{sid}/websocket")
    assert await recv_text(ws) == "o"
    await ws.send_str('["close-custom"]')
    assert await recv_text(ws) == 'c[4001,"custom"]'
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSING,
        aiohttp.WSMsgType.CLOSED,
    ), msg


async def test_app_closed_session_is_removed_after_disconnect_delay(fetch, recorder, sid):
    url = f"/fast/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    assert (await fetch("POST", url + "/xhr_send", body='["close-custom"]')).status == 204
    assert (await fetch("POST", url + "/xhr")).body == b'c[4001,"custom"]\n'
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSED), within=3.0)
    types = recorder.types(sid)
    assert types == [MsgType.OPEN, MsgType.MESSAGE, MsgType.CLOSE, MsgType.CLOSED], types
    r = await fetch("POST", url + "/xhr")
    assert r.body == b"o\n"


async def test_session_keeps_the_request_that_opened_it(aiohttp_server, new_sid):
    # aiohttp-sockjs exposes `session.request`; ours is the same, read-only.
    seen = []

    async def handler(msg, session):
        seen.append(session)

    app = web.Application()
    add_endpoint(app, handler, prefix="/r")
    server = await aiohttp_server(app)
    sid = new_sid()
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(f"/r/000/{sid}/xhr?x=1")) as r,
    ):
        assert await r.read() == b"o\n"
    session = seen[0]
    assert session.request.path == f"/r/000/{sid}/xhr"
    assert session.request.query["x"] == "1"
    with pytest.raises(AttributeError):
        session.request = None
