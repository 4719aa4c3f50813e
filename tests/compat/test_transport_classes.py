"""aiohttp-sockjs's transport classes, as its test server (sockjs-testsrv.py) uses them: it
imports `EventsourceTransport`, `HTMLFileTransport` and `XHRStreamingTransport` from their
modules and sets ``maxsize = 4096`` on each before mounting its endpoints, so that the official
suite's response-limit tests see streaming responses end after 4096 bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from cursorshare.sockjs import compat as sockjs
from cursorshare.sockjs.compat.transports.eventsource import EventsourceTransport
from cursorshare.sockjs.compat.transports.htmlfile import HTMLFileTransport
from cursorshare.sockjs.compat.transports.xhrstreaming import XHRStreamingTransport

from .conftest import Serve

STREAMING = (EventsourceTransport, HTMLFileTransport, XHRStreamingTransport)


@pytest.fixture
def small_streams() -> Iterator[None]:
    """As the test server does; put back afterwards (the attributes are process-wide)."""
    before = [cls.maxsize for cls in STREAMING]
    for cls in STREAMING:
        cls.maxsize = 4096
    yield
    for cls, maxsize in zip(STREAMING, before, strict=True):
        cls.maxsize = maxsize


def echo(
    manager: sockjs.SessionManager, session: sockjs.Session, msg: sockjs.SockjsMessage
) -> None:
    if msg.type == sockjs.MsgType.MESSAGE:
        session.send(str(msg.data))


def test_the_classes_keep_aiohttp_sockjs_names_and_defaults() -> None:
    from cursorshare.sockjs.compat import transports

    assert set(transports.transport_handlers) == {
        "websocket",
        "xhr",
        "xhr_send",
        "xhr_streaming",
        "jsonp",
        "jsonp_send",
        "htmlfile",
        "eventsource",
    }
    assert XHRStreamingTransport.maxsize == 128 * 1024
    assert transports.XHRTransport.maxsize == 0  # polling answers one frame whatever its size


@pytest.mark.usefixtures("small_streams")
async def test_a_lowered_maxsize_ends_streaming_responses_early(serve: Serve) -> None:
    app = web.Application()
    sockjs.add_endpoint(app, echo, name="echo", prefix="/echo")
    url = await serve(app) + "/echo/000/limited"
    async with aiohttp.ClientSession() as http, http.post(url + "/xhr_streaming") as stream:
        assert await stream.content.readline() == b"h" * 2048 + b"\n"
        assert await stream.content.readline() == b"o\n"
        # As the official XhrStreaming.test_response_limit: 4096 bytes and the response ends.
        async with http.post(url + "/xhr_send", data='["' + "x" * 4096 + '"]') as sent:
            assert sent.status == 204
        assert await stream.content.readline() == b'a["' + b"x" * 4096 + b'"]\n'
        async with asyncio.timeout(10):  # an upper bound on the end, not a pause
            assert await stream.content.read() == b""  # ended by the server


async def test_maxsize_left_alone_keeps_the_usual_limit(serve: Serve) -> None:
    app = web.Application()
    sockjs.add_endpoint(app, echo, name="echo", prefix="/echo")
    assert sockjs.get_manager("echo", app).core.options.response_limit == 128 * 1024
