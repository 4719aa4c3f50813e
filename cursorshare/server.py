"""The cursorshare application: the `/ws` SockJS endpoint, the web app, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from .config import Settings
from .cursors.app import CursorApp
from .cursors.messages import CursorCodec
from .cursors.page import add_page_config
from .cursors.presence import CursorPresence
from .httpguard import GuardedAppRunner, HttpBounds
from .hub import Backplane, Hub, InMemoryBackplane
from .metrics import metrics_handler, register_metrics
from .sockjs import SessionManager, add_endpoint

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
SOCKJS: web.AppKey[SessionManager] = web.AppKey("sockjs", SessionManager)
CURSORS: web.AppKey[CursorApp] = web.AppKey("cursors", CursorApp)


def web_root() -> Path:
    """The browser app: packaged with the wheel, or `web/static` of a source checkout."""
    packaged = Path(str(resources.files("cursorshare"))) / "_web"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "web" / "static"


def make_backplane(settings: Settings) -> Backplane:
    if not settings.redis_url:
        return InMemoryBackplane()
    from .backplanes.redis import RedisBackplane  # only multi-node deployments need redis-py

    node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
    return RedisBackplane(settings.redis_url, node_id=node_id)


def build_app(
    settings: Settings | None = None, *, backplane: Backplane | None = None
) -> web.Application:
    settings = settings or Settings()
    hub = Hub(
        CursorCodec(),
        backplane=backplane or make_backplane(settings),
        translator=CursorPresence(),
        tick=settings.tick_ms / 1000,
        max_tick=max(settings.tick_ms, settings.max_tick_ms) / 1000,
    )
    cursors = CursorApp(hub)
    app = web.Application()
    app[HUB] = hub
    app[CURSORS] = cursors
    app[SOCKJS] = add_endpoint(
        app,
        cursors.handle,
        prefix="/ws",
        name="ws",
        heartbeat_delay=settings.heartbeat_delay,
        disconnect_delay=settings.disconnect_delay,
        response_limit=settings.response_limit,
        max_message_size=settings.max_message_size,
        max_queue_bytes=settings.max_queue_bytes,
        max_sessions=settings.max_sessions,
        max_sessions_per_address=settings.max_sessions_per_address,
        max_messages_per_second=settings.max_messages_per_second,
        cookie_needed=settings.cookie_needed,
        allowed_origins=settings.allowed_origins,
        disabled_transports=settings.disabled_transports,
        sockjs_url="/vendor/sockjs.min.js",
    )

    async def start_hub(app: web.Application) -> None:
        await hub.start()

    async def stop_hub(app: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(start_hub)
    app.on_cleanup.append(stop_hub)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    register_metrics(app)
    root = web_root()
    index = root / "index.html"

    async def index_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app.router.add_get("/", index_page)
    add_page_config(app, settings.allowed_backends)
    app.router.add_static("/", root)
    return app


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    state = hub.backplane.state
    body = {
        "status": "ok" if state.healthy else "degraded",
        "backplane": state,
        "sessions": len(request.app[SOCKJS]),
        "rooms": len(hub.rooms),
    }
    # 200 even when the backplane is down: the node still serves its own users, and a load
    # balancer must not take every node out of rotation because Redis is away.
    return web.json_response(body)


# -- Serving: the application behind the HTTP-level bounds (cursorshare/httpguard.py). ------
# `web.run_app` always builds a plain `AppRunner`, so `run` does what it does (signals, the
# graceful cleanup, closing the loop) with a `GuardedAppRunner` instead.


def http_bounds(settings: Settings) -> HttpBounds:
    return HttpBounds(**{f.name: getattr(settings, f.name) for f in fields(HttpBounds)})


def make_runner(app: web.Application, settings: Settings, **kwargs: Any) -> GuardedAppRunner:
    """A runner for ``app`` with ``settings``' HTTP bounds; ``kwargs`` go to `web.AppRunner`."""
    kwargs.setdefault("handler_cancellation", True)  # an aborted poll is noticed at once
    return GuardedAppRunner(app, bounds=http_bounds(settings), **kwargs)


async def _serve(
    app: web.Application,
    settings: Settings,
    *,
    shutdown_timeout: float,
    access_log: logging.Logger | None,
    announce: Callable[[], None],
) -> None:
    runner = make_runner(
        app,
        settings,
        handle_signals=True,  # SIGINT/SIGTERM raise web.GracefulExit out of the loop
        shutdown_timeout=shutdown_timeout,
        access_log=access_log,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        announce()
        await asyncio.Event().wait()  # until a signal ends the loop
    finally:
        await runner.cleanup()


def run(
    app: web.Application,
    settings: Settings,
    *,
    loop: asyncio.AbstractEventLoop,
    shutdown_timeout: float,
    access_log: logging.Logger | None,
    announce: Callable[[], None],
) -> None:
    """Serve ``app`` on ``loop`` until SIGINT or SIGTERM, then shut down gracefully."""
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        _serve(
            app,
            settings,
            shutdown_timeout=shutdown_timeout,
            access_log=access_log,
            announce=announce,
        )
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()  # runs the runner's cleanup: sessions closed, handlers awaited
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
