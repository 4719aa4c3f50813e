"""aiohttp-sockjs's API over cursorshare's SockJS layer: change the import, keep the program.

    from cursorshare.sockjs import compat as sockjs

    async def chat(manager, session, msg):
        if msg.type == sockjs.MSG_MESSAGE:
            manager.broadcast(msg.data)

    sockjs.add_endpoint(app, chat, name="chat", prefix="/sockjs/")

Handlers of both generations work, `(manager, session, msg)` and the older `(msg, session)`,
coroutine functions or plain ones. What behaves differently on purpose (sessions that
really expire, CORS answered by the endpoint itself, bounded queues) is in docs/migrating.md.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Unpack

from aiohttp import web

from ..endpoint import add_endpoint as add_core_endpoint
from ..options import EndpointTuning
from .protocol import (
    CLOSE_MESSAGE,
    CLOSED_MESSAGE,
    MSG_CLOSE,
    MSG_CLOSED,
    MSG_MESSAGE,
    MSG_OPEN,
    OPEN_MESSAGE,
    STATE_CLOSED,
    STATE_CLOSING,
    STATE_NEW,
    STATE_OPEN,
    Frame,
    MsgType,
    SessionIsAcquired,
    SessionIsClosed,
    SessionState,
    SockjsException,
    SockjsMessage,
)
from .session import AnyHandler, Session, SessionManager
from .transports import response_limit as streaming_maxsize

log = logging.getLogger("cursorshare.sockjs")

MANAGERS = web.AppKey("cursorshare.sockjs.compat.managers", dict[str, SessionManager])
_endpoint_numbers = itertools.count(1000)


def get_manager(name: str, app: web.Application) -> SessionManager:
    """The manager of the endpoint added under ``name``."""
    return app[MANAGERS][name]


def add_endpoint(
    app: web.Application,
    handler: AnyHandler,
    *,
    name: str = "",
    prefix: str = "/sockjs",
    manager: SessionManager | None = None,
    disable_transports: Iterable[str] = (),
    sockjs_cdn: str | None = None,
    cookie_needed: bool = True,
    cors_config: object | None = None,
    heartbeat_delay: float = 25,
    disconnect_delay: float = 5,
    debug: bool = False,
    **options: Unpack[EndpointTuning],
) -> list[web.AbstractRoute]:
    """Mount a SockJS endpoint as aiohttp-sockjs does; return the routes it registered.

    ``sockjs_cdn`` is the script of the iframe page (default: the sockjs-client this library
    ships, served under ``prefix``). ``cors_config`` is accepted and not needed: the endpoint
    answers CORS itself (restrict it with ``allowed_origins``). Further ``options`` are the
    `EndpointOptions` fields aiohttp-sockjs has no argument for (`EndpointTuning`:
    max_queue_bytes, allowed_origins, ...); without ``response_limit`` it is the smallest
    ``maxsize`` of the streaming classes in `compat.transports`, read now.
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {handler!r}")
    name = name or f"n{next(_endpoint_numbers)}"
    if manager is None:
        manager = SessionManager(name, app, handler, heartbeat_delay, disconnect_delay, debug)
    elif manager.name != name:
        raise ValueError("Session manager must have the same name as the sockjs route")
    if MANAGERS not in app:
        app[MANAGERS] = {}
    managers = app[MANAGERS]
    if name in managers:
        raise ValueError(f'SockJS "{name}" route already registered')
    if cors_config is not None:
        log.info("sockjs %s: cors_config is not used, the endpoint answers CORS itself", name)
    # Programs lower the streaming transports' `maxsize` before mounting (its test server does).
    options.setdefault("response_limit", streaming_maxsize())
    before = set(app.router.routes())
    core = add_core_endpoint(
        app,
        manager.deliver,
        prefix=prefix,
        name=name,
        heartbeat_delay=manager.heartbeat_delay,
        disconnect_delay=manager.disconnect_delay,
        cookie_needed=cookie_needed,
        disabled_transports=disable_transports,
        sockjs_url=sockjs_cdn,
        **options,
    )
    manager.bind(core)
    managers[name] = manager
    return [route for route in app.router.routes() if route not in before]


__all__ = [
    "CLOSED_MESSAGE",
    "CLOSE_MESSAGE",
    "MSG_CLOSE",
    "MSG_CLOSED",
    "MSG_MESSAGE",
    "MSG_OPEN",
    "OPEN_MESSAGE",
    "STATE_CLOSED",
    "STATE_CLOSING",
    "STATE_NEW",
    "STATE_OPEN",
    "Frame",
    "MsgType",
    "Session",
    "SessionIsAcquired",
    "SessionIsClosed",
    "SessionManager",
    "SessionState",
    "SockjsException",
    "SockjsMessage",
    "add_endpoint",
    "get_manager",
]
