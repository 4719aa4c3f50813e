"""The aiohttp-sockjs API items the issue lists, each with the semantics aiohttp-sockjs 0.13
gives it (read from aio-libs/sockjs: route.py, session.py, protocol.py, its tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cursorshare.sockjs import compat as sockjs
from cursorshare.sockjs.compat import MsgType, Session, SessionManager, SockjsMessage

from .conftest import DISCONNECT_DELAY, Connect, Serve, wait_until


class Recording:
    """A handler that records what it is given and lets a test act on each event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, MsgType, Any]] = []
        self.sessions: list[Session] = []
        self.opened = asyncio.Event()

    async def __call__(self, manager: SessionManager, session: Session, msg: SockjsMessage) -> None:
        self.events.append((session.id, msg.type, msg.data))
        if msg.type == MsgType.OPEN:
            self.sessions.append(session)
            self.opened.set()
        elif msg.type == MsgType.MESSAGE:
            session.send(str(msg.data))

    def types(self, session_id: str) -> list[MsgType]:
        return [t for sid, t, _ in self.events if sid == session_id]


def mounted(handler: Any = None, **options: Any) -> tuple[web.Application, SessionManager]:
    app = web.Application()
    sockjs.add_endpoint(
        app,
        handler or Recording(),
        name="test",
        prefix="/sjs",
        disconnect_delay=DISCONNECT_DELAY,
        **options,
    )
    return app, sockjs.get_manager("test", app)


def test_names_of_both_generations_compare_equal() -> None:
    assert sockjs.MSG_OPEN == MsgType.OPEN == 1
    assert sockjs.MSG_CLOSED == MsgType.CLOSED == 4
    assert sockjs.STATE_OPEN == sockjs.SessionState.OPEN == 1
    msg = SockjsMessage(MsgType.MESSAGE, "x")
    assert msg.tp is msg.type is MsgType.MESSAGE
    assert issubclass(sockjs.SessionIsClosed, Exception)
    assert issubclass(sockjs.SessionIsAcquired, sockjs.SockjsException)


def test_add_endpoint_returns_its_routes_and_refuses_a_second_one_of_the_same_name() -> None:
    app = web.Application()
    routes = sockjs.add_endpoint(app, Recording(), name="chat", prefix="/sockjs/")
    paths = {route.resource.canonical for route in routes if route.resource is not None}
    assert "/sockjs/info" in paths and "/sockjs/websocket" in paths
    assert all(route in app.router.routes() for route in routes)
    with pytest.raises(ValueError, match="already registered"):
        sockjs.add_endpoint(app, Recording(), name="chat", prefix="/other")
    other = SessionManager("not-chat2", app, Recording())
    with pytest.raises(ValueError, match="same name"):
        sockjs.add_endpoint(app, Recording(), name="chat2", prefix="/two", manager=other)


def test_options_of_aiohttp_sockjs_are_accepted() -> None:
    app = web.Application()
    manager = SessionManager("given", app, Recording(), heartbeat_delay=10, disconnect_delay=2)
    routes = sockjs.add_endpoint(
        app,
        manager.handler,
        name="given",
        prefix="/given",
        manager=manager,
        disable_transports=("websocket-raw",),
        sockjs_cdn="https://cdn.example/sockjs.min.js",
        cors_config=object(),  # aiohttp_cors's config: not needed, CORS is built in
        debug=True,
    )
    assert sockjs.get_manager("given", app) is manager
    assert manager.core.options.disconnect_delay == 2
    assert manager.core.options.heartbeat_delay == 10
    paths = {route.resource.canonical for route in routes if route.resource is not None}
    assert "/given/websocket" not in paths  # only the raw websocket is disabled
    assert any(path.endswith("/websocket") for path in paths)


async def test_sockjs_cdn_is_the_iframe_script(serve: Serve) -> None:
    app, _ = mounted(sockjs_cdn="https://cdn.example/sockjs.min.js")
    url = await serve(app)
    async with aiohttp.ClientSession() as http, http.get(url + "/sjs/iframe.html") as r:
        assert '<script src="https://cdn.example/sockjs.min.js">' in await r.text()


async def test_sync_handlers_and_msg_session_handlers_are_called(
    serve: Serve, connect: Connect
) -> None:
    seen: list[Any] = []

    def old_style(msg, session):
        seen.append((msg.tp, msg.data, session.id))
        if msg.tp == sockjs.MSG_MESSAGE:
            session.send(msg.data.upper())

    app, _ = mounted(old_style)
    client = await connect("xhr-polling", await serve(app) + "/sjs")
    await client.send("shout")
    assert await client.recv() == "SHOUT"
    assert seen[:2] == [
        (MsgType.OPEN, None, client.session_id),
        (MsgType.MESSAGE, "shout", client.session_id),
    ]


async def test_session_request_acquired_and_custom_attributes(
    serve: Serve, connect: Connect
) -> None:
    seen: dict[str, Any] = {}

    async def handler(manager: SessionManager, session: Session, msg: SockjsMessage) -> None:
        if msg.type == MsgType.OPEN:
            assert session.request is not None
            session.user = session.request.query.get("user")  # type: ignore[attr-defined]
            seen["acquired_at_open"] = session.acquired
        elif msg.type == MsgType.MESSAGE:
            session.send(f"{session.user}: {msg.data}")  # type: ignore[attr-defined]

    app, manager = mounted(handler)
    client = await connect("xhr-streaming", await serve(app) + "/sjs", "user=ada")
    await client.send("hi")
    assert await client.recv() == "ada: hi"
    assert seen["acquired_at_open"] is True
    session = manager.get(client.session_id)
    assert session.acquired is True  # the stream is attached
    assert session.state == sockjs.STATE_OPEN and not session.expired


async def test_websocket_sessions_are_found_by_their_id(serve: Serve, connect: Connect) -> None:
    recording = Recording()
    app, manager = mounted(recording)
    client = await connect("websocket", await serve(app) + "/sjs")
    await recording.opened.wait()
    session = manager.get(client.session_id)
    assert session is recording.sessions[0]
    assert client.session_id in manager.sessions
    assert [s.id for s in manager.active_sessions()] == [client.session_id]
    assert manager.acquired == {client.session_id: True}


async def test_get_with_create_makes_a_session_a_transport_then_opens(
    serve: Serve, connect: Connect
) -> None:
    recording = Recording()
    app, manager = mounted(recording)
    url = await serve(app) + "/sjs"
    with pytest.raises(KeyError):
        manager.get("nobody")
    assert manager.get("nobody", default=None) is None
    made = manager.get("prepared", create=True)
    assert made.state == sockjs.STATE_NEW
    assert manager.get("prepared") is made
    client = await connect("xhr-polling", url, session_id="prepared")
    await client.send("ping")
    assert await client.recv() == "ping"
    assert recording.sessions == [made]
    assert made.state == sockjs.STATE_OPEN


async def test_a_created_session_nothing_opens_is_forgotten(serve: Serve) -> None:
    recording = Recording()
    app, manager = mounted(recording)
    await serve(app)
    made = manager.get("unclaimed", create=True)
    await wait_until(lambda: made.expired)
    assert manager.get("unclaimed", default=None) is None
    assert recording.events == []  # never opened: the handler hears nothing of it


async def test_broadcast_excludes_session_ids(serve: Serve, connect: Connect) -> None:
    app, manager = mounted()
    url = await serve(app) + "/sjs"
    first = await connect("websocket", url)
    second = await connect("xhr-streaming", url)
    await wait_until(lambda: len(manager.sessions) == 2)
    manager.broadcast("not for the first", exclude_session_ids={first.session_id})
    manager.broadcast("for all")
    assert await second.recv() == "not for the first"
    assert await second.recv() == "for all"
    assert await first.recv() == "for all"


async def test_send_says_whether_it_sent_and_close_reaches_the_handler(
    serve: Serve, connect: Connect
) -> None:
    recording = Recording()
    app, _ = mounted(recording)
    client = await connect("websocket", await serve(app) + "/sjs")
    await recording.opened.wait()
    session = recording.sessions[0]
    assert session.send("one") is True
    assert await client.recv() == "one"
    session.close(4000, "done")
    assert session.send("two") is False
    assert await client.wait_closed() == (4000, "done")
    await wait_until(lambda: MsgType.CLOSED in recording.types(session.id))
    closes = [data for sid, t, data in recording.events if t == MsgType.CLOSE]
    assert closes == [None]  # a close the server made carries no exception
    assert session.expired and not session.interrupted
    with pytest.raises(TypeError):
        session.send(b"bytes")  # type: ignore[arg-type]


async def test_a_client_gone_mid_stream_interrupts_the_session(
    serve: Serve, connect: Connect
) -> None:
    recording = Recording()
    app, _ = mounted(recording)
    client = await connect("xhr-streaming", await serve(app) + "/sjs")
    await recording.opened.wait()
    session = recording.sessions[0]
    await client.close()  # aborts the stream
    await wait_until(lambda: MsgType.CLOSED in recording.types(session.id))
    (close_data,) = [data for sid, t, data in recording.events if t == MsgType.CLOSE]
    assert isinstance(close_data, ConnectionError)
    assert session.interrupted and session.exception is close_data


async def test_an_exception_in_the_open_handler_closes_the_session(
    serve: Serve, connect: Connect
) -> None:
    async def failing(manager: SessionManager, session: Session, msg: SockjsMessage) -> None:
        if msg.type == MsgType.OPEN:
            raise RuntimeError("no room for you")

    app, manager = mounted(failing)
    client = await connect("xhr-streaming", await serve(app) + "/sjs")
    assert await client.wait_closed() == (3000, "Internal error")
    session = manager.get(client.session_id)
    assert session.interrupted and isinstance(session.exception, RuntimeError)


async def test_clear_and_stop_close_every_session(serve: Serve, connect: Connect) -> None:
    recording = Recording()
    app, manager = mounted(recording)
    client = await connect("websocket", await serve(app) + "/sjs")
    await recording.opened.wait()
    manager.start()
    assert manager.started
    await manager.stop()
    assert not manager.started
    assert manager.sessions == {}
    assert MsgType.CLOSED in recording.types(client.session_id)
    assert client.closed_with is not None or await client.wait_closed()
