"""aiohttp-sockjs's sockjs-testsrv.py, in our words, through the compat layer: the echo
endpoint over every transport (with a plain, non-async handler, which it wraps), the closing
endpoint, websocket disabled, and its default of cookie_needed=True."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from cursorshare.sockjs import compat as sockjs
from tests.support.clients import SessionClosed

from .conftest import TRANSPORTS, Connect, Serve


def echo_session(manager, session, msg):  # a plain function: the compat layer wraps it
    if msg.type == sockjs.MsgType.MESSAGE:
        session.send(msg.data)


async def close_session_handler(manager, session, msg):
    if msg.type == sockjs.MsgType.OPEN:
        session.close()


def reference_test_server() -> web.Application:
    app = web.Application()
    sockjs.add_endpoint(app, echo_session, name="echo", prefix="/echo")
    sockjs.add_endpoint(app, close_session_handler, name="close", prefix="/close")
    sockjs.add_endpoint(
        app,
        echo_session,
        name="wsoff",
        prefix="/disabled_websocket_echo",
        disable_transports=("websocket",),
    )
    sockjs.add_endpoint(app, echo_session, name="cookie", prefix="/cookie_needed_echo")
    return app


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_and_close_over_every_transport(
    serve: Serve, connect: Connect, transport: str
) -> None:
    url = await serve(reference_test_server())
    client = await connect(transport, url + "/echo")
    for message in ("hello", '100% \u2028 \x00 ["]', "x" * 5000):
        await client.send(message)
        assert await client.recv() == message

    closing = await connect(transport, url + "/close")
    with pytest.raises(SessionClosed):
        await closing.recv()
    assert closing.closed_with == (3000, "Go away!")


async def test_disabled_websocket_and_the_cookie_needed_default(serve: Serve) -> None:
    url = await serve(reference_test_server())
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/disabled_websocket_echo/info") as r:
            assert (await r.json())["websocket"] is False
        async with http.get(url + "/disabled_websocket_echo/000/a/websocket") as r:
            assert r.status == 404
        async with http.get(url + "/echo/info") as r:
            assert (await r.json())["cookie_needed"] is True
        async with http.post(url + "/echo/000/b/xhr") as r:
            assert r.cookies["JSESSIONID"].value == "dummy"
