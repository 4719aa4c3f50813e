"""Mounting a SockJS endpoint on an aiohttp application: the route table of the protocol."""

from __future__ import annotations

import functools
import hashlib
import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Unpack

import orjson
from aiohttp import hdrs, web

from .client_script import shipped_client
from .http import (
    CONTENT_HTML,
    CONTENT_JSON,
    NO_CACHE,
    cache_for_a_year,
    cors_headers,
    error,
    preflight,
)
from .manager import Handler, SessionManager
from .options import EndpointOptions, EndpointOverrides
from .transports import ROUTES
from .transports.base import TransportHandler
from .transports.websocket import raw_websocket

_IFRAME = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""

log = logging.getLogger("cursorshare.sockjs")


def _segment(max_length: int) -> str:
    """Server and session ids: 1 to ``max_length`` of `A-Z a-z 0-9 _ -` and space.

    The spec accepts any non-empty value without dots or slashes; its own suite uses letters,
    digits, `_`, `-` and `%20`, and sockjs-client generates `[a-z0-5]` ids and 3-digit server
    ids. Anything else (`%23`, `%2F`, controls, non-ASCII) is a 404, so no id a client sends
    can carry a separator or look like another table's key.
    """
    return rf"[A-Za-z0-9_\- ]{{1,{max_length}}}"


async def greeting(request: web.Request) -> web.Response:
    return web.Response(text="Welcome to SockJS!\n", content_type="text/plain", charset="UTF-8")


async def info(manager: SessionManager, request: web.Request) -> web.Response:
    options = manager.options
    body = orjson.dumps(
        {
            "websocket": options.websocket_enabled,
            "cookie_needed": options.cookie_needed,
            "origins": ["*:*"],
            "entropy": secrets.randbits(32),
        }
    )
    headers = cors_headers(request, options)
    headers[hdrs.CACHE_CONTROL] = NO_CACHE
    headers[hdrs.CONTENT_TYPE] = CONTENT_JSON
    return web.Response(body=body, headers=headers)


async def info_options(manager: SessionManager, request: web.Request) -> web.Response:
    return preflight(request, manager.options, "OPTIONS, GET")


def iframe_page(
    script_url: Callable[[], str],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The page that lets iframe-based transports talk to us from another origin.

    It is built when first served, not when mounted: only then is the script's URL final
    (a sub-application's prefix is added to its routes after they are made)."""

    @functools.cache
    def body_and_etag() -> tuple[bytes, str]:
        body = _IFRAME.format(sockjs_url=html.escape(script_url(), quote=True)).encode()
        return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    async def iframe(request: web.Request) -> web.Response:
        body, etag = body_and_etag()
        headers = cache_for_a_year()
        headers[hdrs.ETAG] = etag
        if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
            return web.Response(status=304, headers=headers)
        headers[hdrs.CONTENT_TYPE] = CONTENT_HTML
        return web.Response(body=body, headers=headers)

    return iframe


def iframe_script_url(
    router: web.UrlDispatcher, prefix: str, sockjs_url: str | None
) -> Callable[[], str]:
    """The script the iframe page loads: ``sockjs_url``, else the shipped client, now routed
    (its path read when asked, so that it includes any sub-application prefix)."""
    if sockjs_url is not None:
        return lambda: sockjs_url
    client = shipped_client()
    if client is None:
        log.warning(
            "no sockjs-client is shipped with this installation: the iframe transports of %s "
            "will fail until sockjs_url names one",
            prefix,
        )
        return lambda: f"{prefix}/sockjs-client/missing/sockjs.min.js"
    script = client.add_routes(router, prefix)
    return lambda: str(script.url_for())


def _bind(
    handler: TransportHandler, manager: SessionManager
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def bound(request: web.Request) -> web.StreamResponse:
        # With an allow-list, a browser page from another origin is refused outright: CORS
        # alone would only hide the answer, after the request had its effect.
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not manager.options.origin_allowed(origin):
            return error(403, "Origin not allowed.")
        return await handler(manager, request)

    return bound


def add_endpoint(
    app: web.Application,
    handler: Handler,
    *,
    prefix: str = "/sockjs",
    name: str = "",
    options: EndpointOptions | None = None,
    **overrides: Unpack[EndpointOverrides],
) -> SessionManager:
    """Mount a SockJS endpoint at ``prefix`` and return its session manager.

    ``handler(msg, session)`` receives every session's events. The endpoint runs with
    ``options`` (default: `EndpointOptions()`, whose fields document every option and its
    default), with any ``overrides`` applied on top: keyword arguments named like those
    fields (``heartbeat_delay=5.0``, ``disabled_transports=("websocket",)``, ...). Without
    ``sockjs_url`` the iframe page loads the sockjs-client this library ships, served under
    ``prefix``.
    """
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/"):
        raise ValueError("prefix must start with '/'")
    settings = (options or EndpointOptions()).replace(**overrides)
    manager = SessionManager(name or prefix, handler, settings)
    router = app.router
    route_name = (lambda suffix: f"sockjs-{name}-{suffix}") if name else (lambda suffix: None)

    router.add_get(prefix, greeting, name=route_name("greeting"), allow_head=False)
    router.add_get(prefix + "/", greeting, allow_head=False)
    router.add_get(prefix + "/info", _bind(info, manager), allow_head=False)
    router.add_route("OPTIONS", prefix + "/info", _bind(info_options, manager))
    router.add_get(
        prefix + r"/iframe{version:(-[^/]*)?}.html",
        iframe_page(iframe_script_url(router, prefix, settings.sockjs_url)),
        allow_head=False,
    )
    if settings.raw_websocket_enabled:
        router.add_route("*", prefix + "/websocket", _bind(raw_websocket, manager))
    for route in ROUTES:
        if route.name in settings.disabled_transports:
            continue
        segment = _segment(settings.max_session_id_length)
        path = f"{prefix}/{{server:{segment}}}/{{session:{segment}}}/{route.name}"
        router.add_route(route.method, path, _bind(route.handler, manager))
    app.on_shutdown.append(manager.shutdown)
    return manager
