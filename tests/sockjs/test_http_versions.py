"""HTTP/1.0 and HTTP/1.1 framing sanity (spec: Http10, Http11), over raw sockets."""

from __future__ import annotations

GREETING = b"Welcome to SockJS!\n"
PRELUDE = b"h" * 2048 + b"\n"


async def test_http10_greeting(open_raw):
    c = await open_raw()
    head = await c.request_head("GET", "/echo", headers={"Connection": "Keep-Alive"}, version="1.0")
    assert head.status == 200
    assert head.version in ("1.0", "1.1")
    # Transfer-Encoding does not exist in HTTP/1.0.
    assert "Transfer-Encoding" not in head.headers

    if "Content-Length" not in head.headers:
        assert head.headers["Connection"].lower() == "close"
        assert await c.read_to_eof() == GREETING
        return
    assert int(head.headers["Content-Length"]) == 19
    assert await c.read_exact(19) == GREETING
    connection = head.headers.get("Connection", "").lower()
    if connection in ("close", ""):
        assert await c.at_eof()  # close is the default in HTTP/1.0
    else:
        assert connection == "keep-alive"
        # Another request on the same connection.
        head = await c.request_head(
            "GET", "/echo", headers={"Connection": "Keep-Alive"}, version="1.0"
        )
        assert head.status == 200


async def test_http10_streaming_without_chunking_then_close(open_raw, sid):
    c = await open_raw()
    head = await c.request_head(
        "POST",
        f"/close/000/{sid}/xhr_streaming",
        headers={"Connection": "Keep-Alive"},
        version="1.0",
    )
    assert head.status == 200
    assert "Transfer-Encoding" not in head.headers
    # The length is not known in advance.
    assert "Content-Length" not in head.headers

    assert await c.read_exact(2048 + 1) == PRELUDE
    assert await c.read_exact(2) == b"o\n"
    assert await c.read_exact(19) == b'c[3000,"Go away!"]\n'
    assert await c.at_eof()


async def test_http11_greeting_keeps_connection_alive(open_raw):
    c = await open_raw()
    head = await c.request_head("GET", "/echo", headers={"Connection": "Keep-Alive"}, version="1.1")
    assert head.version == "1.1"
    assert head.headers.get("Connection", "").lower() in ("keep-alive", "")
    if "Content-Length" in head.headers:
        assert int(head.headers["Content-Length"]) == 19
        assert await c.read_exact(19) == GREETING
        assert "Transfer-Encoding" not in head.headers
    else:
        assert head.headers["Transfer-Encoding"].lower() == "chunked"
        assert await c.read_chunk() == GREETING
        assert await c.read_chunk() == b""

    head = await c.request_head("GET", "/echo", headers={"Connection": "Keep-Alive"}, version="1.1")
    assert head.status == 200


async def test_http11_streaming_is_chunked(open_raw, sid):
    c = await open_raw()
    head = await c.request_head(
        "POST",
        f"/close/000/{sid}/xhr_streaming",
        headers={"Connection": "Keep-Alive"},
        version="1.1",
    )
    assert head.status == 200
    assert head.headers["Transfer-Encoding"].lower() == "chunked"
    assert "Content-Length" not in head.headers

    assert await c.read_chunk() == PRELUDE
    assert await c.read_chunk() == b"o\n"
    assert await c.read_chunk() == b'c[3000,"Go away!"]\n'
    assert await c.read_chunk() == b""
