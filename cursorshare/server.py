"""The cursorshare application: the `/ws` SockJS endpoint, the web app, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from .accesslog import RedactingAccessLogger
from .config import Settings, endpoint_options, http_bounds
from .cursors.app import CursorApp
from .cursors.bye import add_bye_endpoint
from .cursors.messages import CursorCodec
from .cursors.page import add_page_config
from .cursors.presence import CursorPresence
from .httpguard import GuardedAppRunner
from .hub import Backplane, Hub, InMemoryBackplane
from .listener import CannotListen, ListeningSite
from .metrics import metrics_handler, register_metrics
from .sockjs import SessionManager, add_endpoint
from .sockjs.directory import SessionDirectory
from .webassets import add_web_assets
from .workers import EXIT_CANNOT_LISTEN

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
SOCKJS: web.AppKey[SessionManager] = web.AppKey("sockjs", SessionManager)
CURSORS: web.AppKey[CursorApp] = web.AppKey("cursors", CursorApp)
NODE_ID: web.AppKey[str] = web.AppKey("node_id", str)

#: The script the iframe page loads: the sockjs-client the web app itself loads.
SOCKJS_URL = "/vendor/sockjs.min.js"


def web_root() -> Path:
    """The browser app: packaged with the wheel, or `web/static` of a source checkout."""
    packaged = Path(str(resources.files("cursorshare"))) / "_web"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "web" / "static"


def node_id_of(settings: Settings) -> str:
    return settings.node_id or f"{socket.gethostname()}-{os.getpid()}"


def make_backplane(settings: Settings) -> Backplane:
    if not settings.redis_url:
        return InMemoryBackplane()
    from .backplanes.redis import RedisBackplane  # only multi-node deployments need redis-py

    return RedisBackplane(settings.redis_url, node_id=node_id_of(settings))


def make_directory(backplane: Backplane) -> SessionDirectory | None:
    """With the Redis backplane, any node serves any request of a session (docs/deploy.md):
    the sessions' owners are recorded beside the backplane, in the same Redis."""
    if isinstance(backplane, InMemoryBackplane):
        return None
    from .backplanes.redis import RedisBackplane, RedisSessionDirectory

    if not isinstance(backplane, RedisBackplane):
        return None
    return SessionDirectory(RedisSessionDirectory.beside(backplane))


def build_app(
    settings: Settings | None = None, *, backplane: Backplane | None = None
) -> web.Application:
    settings = settings or Settings()
    backplane = backplane or make_backplane(settings)
    hub = Hub(
        CursorCodec(),
        backplane=backplane,
        translator=CursorPresence(),
        tick=settings.tick_ms / 1000,
        max_tick=max(settings.tick_ms, settings.max_tick_ms) / 1000,
    )
    cursors = CursorApp(
        hub,
        resume_grace=settings.resume_grace,
        max_dropped_per_address=settings.max_dropped_per_address,
        max_dropped=settings.max_dropped,
    )
    app = web.Application()
    app[HUB] = hub
    app[CURSORS] = cursors
    app[NODE_ID] = node_id_of(settings)
    app[SOCKJS] = add_endpoint(
        app,
        cursors.handle,
        prefix="/ws",
        name="ws",
        options=endpoint_options(settings),
        sockjs_url=SOCKJS_URL,
    )

    directory = make_directory(backplane)
    if directory is not None:
        app[SOCKJS].use_directory(directory)

    async def start_hub(app: web.Application) -> None:
        await hub.start()
        if directory is not None:
            await directory.start()

    async def stop_hub(app: web.Application) -> None:
        # Sessions are closed by now (on_shutdown): their records are released on the way out.
        if directory is not None:
            await directory.stop()
        await hub.stop()

    app.on_startup.append(start_hub)
    app.on_cleanup.append(stop_hub)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    register_metrics(app, hub, app[SOCKJS])
    add_page_config(app, settings.allowed_backends)
    add_bye_endpoint(app, cursors, per_minute=settings.max_byes_per_minute)
    add_web_assets(app, web_root())  # last: it answers every path not routed above
    return app


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    state = hub.backplane.state
    body: dict[str, object] = {
        "status": "ok" if state.healthy else "degraded",
        "backplane": state,
        "sessions": len(request.app[SOCKJS]),
        "rooms": len(hub.rooms),
        "node": request.app[NODE_ID],
    }
    directory = request.app[SOCKJS].directory
    if directory is not None:
        # Requests of other nodes' sessions served here (out) and for them (in).
        body["forwarded"] = {"in": directory.forwarded_in, "out": directory.forwarded_out}
    # 200 even when the backplane is down: the node still serves its own users, and a load
    # balancer must not take every node out of rotation because Redis is away.
    return web.json_response(body)


# -- Serving: the application behind the HTTP-level bounds (cursorshare/httpguard.py). ------
# `web.run_app` always builds a plain `AppRunner`, so `run` does what it does (signals, the
# graceful cleanup, closing the loop) with a `GuardedAppRunner` instead.


def make_runner(app: web.Application, settings: Settings, **kwargs: Any) -> GuardedAppRunner:
    """A runner for ``app`` with ``settings``' HTTP bounds; ``kwargs`` go to `web.AppRunner`."""
    kwargs.setdefault("handler_cancellation", True)  # an aborted poll is noticed at once
    kwargs.setdefault("access_log_class", RedactingAccessLogger)  # no resume keys in logs
    return GuardedAppRunner(app, bounds=http_bounds(settings), **kwargs)


async def _serve(
    app: web.Application,
    settings: Settings,
    *,
    shutdown_timeout: float,
    access_log: logging.Logger | None,
    announce: Callable[[], None],
    reuse_port: bool,
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
        # reuse_port: several workers listen on one port (cursorshare/workers.py).
        site = ListeningSite(
            runner,
            settings.host,
            settings.port,
            reuse_port=reuse_port,
            backlog=settings.listen_backlog,
        )
        await site.start()
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
    reuse_port: bool = False,
) -> None:
    """Serve ``app`` on ``loop`` until SIGINT or SIGTERM, then shut down gracefully.

    An address that cannot be listened on is one ERROR line and ``SystemExit`` with
    `EXIT_CANNOT_LISTEN`, not a traceback.
    """
    cannot_listen: CannotListen | None = None
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        _serve(
            app,
            settings,
            shutdown_timeout=shutdown_timeout,
            access_log=access_log,
            announce=announce,
            reuse_port=reuse_port,
        )
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    except CannotListen as exc:
        cannot_listen = exc
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
    if cannot_listen is not None:
        logging.getLogger("cursorshare").error("%s", cannot_listen.strerror)
        raise SystemExit(EXIT_CANNOT_LISTEN)
