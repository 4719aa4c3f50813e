"""Streaming transports: xhr_streaming and eventsource (spec: XhrStreaming, EventSource,
HandlingClose). Chunks are read off the wire one by one: each frame is one HTTP chunk."""

from __future__ import annotations

from cursorshare.sockjs import MsgType

NOT_CACHED = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
PRELUDE = b"h" * 2048 + b"\n"


def assert_not_cached(head):
    assert head.headers.get("Cache-Control") == NOT_CACHED
    assert "Expires" not in head.headers
    assert "Last-Modified" not in head.headers


def content_type(head):
    return head.headers.get("Content-Type", "").replace(" ", "")


# ----------------------------------------------------------------------------- XhrStreaming


async def test_xhr_streaming_transport(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("POST", url + "/xhr_streaming", headers={"Origin": "test"})
    assert head.status == 200
    assert content_type(head) == "application/javascript;charset=UTF-8"
    assert head.headers["Access-Control-Allow-Origin"] == "test"
    assert head.headers["Access-Control-Allow-Credentials"] == "true"
    assert_not_cached(head)
    assert head.headers.get("Transfer-Encoding", "").lower() == "chunked"

    # 2 KiB of `h` as prelude, then the open frame.
    assert await conn.read_chunk() == PRELUDE
    assert await conn.read_chunk() == b"o\n"

    r = await fetch("POST", url + "/xhr_send", body='["x"]')
    assert r.status == 204
    assert r.body == b""
    assert await conn.read_chunk() == b'a["x"]\n'


async def test_xhr_streaming_closes_after_response_limit(open_raw, fetch, sid):
    # The test endpoint has response_limit=4096: the stream ends once that many bytes of frames
    # were sent, and not before.
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("POST", url + "/xhr_streaming")
    assert head.status == 200
    assert await conn.read_chunk()  # prelude
    assert await conn.read_chunk() == b"o\n"

    msg = '"' + "x" * 128 + '"'
    for _ in range(31):
        r = await fetch("POST", url + "/xhr_send", body="[" + msg + "]")
        assert r.status == 204
        assert await conn.read_chunk() == ("a[" + msg + "]\n").encode()

    assert await conn.read_chunk() == b""  # end of the chunked body


# ----------------------------------------------------------------------------- EventSource


async def test_eventsource_transport(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("GET", url + "/eventsource")
    assert head.status == 200
    assert content_type(head) == "text/event-stream"
    assert_not_cached(head)

    # A new line prelude (an old Opera bug), then the open frame.
    assert await conn.read_chunk() == b"\r\n"
    assert await conn.read_chunk() == b"data: o\r\n\r\n"

    r = await fetch("POST", url + "/xhr_send", body='["x"]')
    assert r.body == b""
    assert r.status == 204
    assert await conn.read_chunk() == b'data: a["x"]\r\n\r\n'

    # Leading spaces, NUL and new lines cannot break the event framing: they are JSON-escaped.
    r = await fetch("POST", url + "/xhr_send", body=r'["  \u0000\n\r "]')
    assert r.body == b""
    assert r.status == 204
    assert await conn.read_chunk() == b'data: a["  \\u0000\\n\\r "]\r\n\r\n'


async def test_eventsource_closes_after_response_limit(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("GET", url + "/eventsource")
    assert head.status == 200
    assert await conn.read_chunk()  # prelude
    assert await conn.read_chunk() == b"data: o\r\n\r\n"

    msg = '"' + "x" * 4096 + '"'
    r = await fetch("POST", url + "/xhr_send", body="[" + msg + "]")
    assert r.status == 204
    assert await conn.read_chunk() == ("data: a[" + msg + "]\r\n\r\n").encode()

    assert await conn.read_chunk() == b""


# ----------------------------------------------------------------------------- HandlingClose


async def test_app_close_is_sent_on_stream_and_to_the_next_request(open_raw, sid):
    url = f"/close/000/{sid}"
    r1 = await open_raw()
    head = await r1.request_head("POST", url + "/xhr_streaming")
    assert head.status == 200
    assert await r1.read_chunk() == PRELUDE
    assert await r1.read_chunk() == b"o\n"
    assert await r1.read_chunk() == b'c[3000,"Go away!"]\n'

    r2 = await open_raw()
    head = await r2.request_head("POST", url + "/xhr_streaming")
    assert head.status == 200
    assert await r2.read_chunk() == PRELUDE
    assert await r2.read_chunk() == b'c[3000,"Go away!"]\n'

    # Both streaming requests end after the close frame.
    assert await r1.read_chunk() == b""
    assert await r2.read_chunk() == b""


async def test_second_streaming_request_gets_2010_and_ends(open_raw, sid):
    url = f"/echo/000/{sid}"
    r1 = await open_raw()
    await r1.request_head("POST", url + "/xhr_streaming")
    assert await r1.read_chunk() == PRELUDE
    assert await r1.read_chunk() == b"o\n"

    r2 = await open_raw()
    head = await r2.request_head("POST", url + "/xhr_streaming")
    assert head.status == 200
    assert await r2.read_chunk() == PRELUDE
    assert await r2.read_chunk() == b'c[2010,"Another connection still open"]\n'
    assert await r2.read_chunk() == b""


async def test_aborted_xhr_streaming_then_new_request_gets_open_or_1002(open_raw, recorder, sid):
    url = f"/echo/000/{sid}"
    r1 = await open_raw()
    await r1.request_head("POST", url + "/xhr_streaming")
    assert await r1.read_chunk() == PRELUDE
    assert await r1.read_chunk() == b"o\n"

    r2 = await open_raw()
    await r2.request_head("POST", url + "/xhr_streaming")
    assert await r2.read_chunk() == PRELUDE
    assert await r2.read_chunk() == b'c[2010,"Another connection still open"]\n'
    assert await r2.read_chunk() == b""

    await r1.close()
    # Wait for the server to see the socket go (the spec relies on timing).
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSE), within=2.0)

    r3 = await open_raw()
    await r3.request_head("POST", url + "/xhr_streaming")
    assert await r3.read_chunk() == PRELUDE
    assert await r3.read_chunk() in (b"o\n", b'c[1002,"Connection interrupted"]\n')


async def test_aborted_xhr_poll_then_new_poll_gets_open_or_1002(
    open_raw, fetch, recorder, wait_receiving, sid
):
    url = f"/echo/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"

    r1 = await open_raw()
    await r1.send_request("POST", url + "/xhr")
    await wait_receiving("echo", sid)

    r2 = await fetch("POST", url + "/xhr")
    assert r2.body == b'c[2010,"Another connection still open"]\n'

    await r1.close()
    await recorder.wait_for(lambda: recorder.has(sid, MsgType.CLOSE), within=2.0)

    r3 = await fetch("POST", url + "/xhr")
    assert r3.body in (b"o\n", b'c[1002,"Connection interrupted"]\n')
