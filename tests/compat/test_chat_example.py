"""aiohttp-sockjs's examples/chat.py, in our words, run through the compat layer over every
transport: in both handler styles it has had (0.13's `(manager, session, msg)` with
`MsgType`, and 0.11's `(msg, session)` with `sockjs.MSG_*` and `session.manager`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

from cursorshare.sockjs import compat as sockjs
from cursorshare.sockjs.compat import MsgType, Session, SessionManager, SockjsMessage

from .conftest import DISCONNECT_DELAY, TRANSPORTS, Connect, Serve


async def chat_handler(manager: SessionManager, session: Session, msg: SockjsMessage) -> None:
    if msg.type == MsgType.OPEN:
        manager.broadcast("Someone joined.")
    elif msg.type == MsgType.MESSAGE:
        manager.broadcast(str(msg.data))
    elif msg.type == MsgType.CLOSED:
        manager.broadcast("Someone left.")


async def legacy_chat_handler(msg: SockjsMessage, session: Session) -> None:
    if session.manager is None:
        return
    if msg.tp == sockjs.MSG_OPEN:
        session.manager.broadcast("Someone joined.")
    elif msg.tp == sockjs.MSG_MESSAGE:
        session.manager.broadcast(str(msg.data))
    elif msg.tp == sockjs.MSG_CLOSED:
        session.manager.broadcast("Someone left.")


async def index(request: web.Request) -> web.Response:
    return web.Response(text="<html>chat</html>", content_type="text/html")


def chat_app(handler: Callable[..., object]) -> web.Application:
    app = web.Application()
    app.router.add_route("GET", "/", index)
    sockjs.add_endpoint(
        app,
        handler,
        name="chat",
        prefix="/sockjs/",
        disconnect_delay=DISCONNECT_DELAY,
    )
    return app


@pytest.mark.parametrize("style", ["manager_session_msg", "msg_session"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_chat_room_over_every_transport(
    serve: Serve, connect: Connect, transport: str, style: str
) -> None:
    handler = chat_handler if style == "manager_session_msg" else legacy_chat_handler
    url = await serve(chat_app(handler)) + "/sockjs"

    alice = await connect(transport, url)
    assert await alice.recv() == "Someone joined."
    bob = await connect(transport, url)
    assert await bob.recv() == "Someone joined."
    assert await alice.recv() == "Someone joined."

    await alice.send("hello, room")
    assert await alice.recv() == "hello, room"
    assert await bob.recv() == "hello, room"

    await bob.close()  # goes away; after disconnect_delay the room hears of it
    assert await alice.recv() == "Someone left."
