"""HTTP details shared by the endpoints: CORS, caching, the JSESSIONID cookie, bodies."""

from __future__ import annotations

import re
import time
from email.utils import formatdate

from aiohttp import hdrs, web

from .options import EndpointOptions

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
ONE_YEAR = 365 * 24 * 3600
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,128}")

CONTENT_JS = "application/javascript; charset=UTF-8"
CONTENT_TEXT = "text/plain; charset=UTF-8"
CONTENT_HTML = "text/html; charset=UTF-8"
CONTENT_JSON = "application/json; charset=UTF-8"


def cors_headers(request: web.BaseRequest, options: EndpointOptions) -> dict[str, str]:
    """Echo the request's Origin with credentials allowed (a `null` origin too).

    Without an Origin header the answer is ``*`` without credentials. A disallowed origin
    gets no CORS headers at all, so the browser refuses the response.
    """
    origin = request.headers.get(hdrs.ORIGIN)
    headers: dict[str, str] = {}
    if origin is None or origin == "*":
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
    elif options.origin_allowed(origin):
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        headers[hdrs.VARY] = "Origin"
    else:
        return headers
    requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    if requested:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested
    return headers


def cache_for_a_year() -> dict[str, str]:
    return {
        hdrs.CACHE_CONTROL: f"public, max-age={ONE_YEAR}",
        hdrs.EXPIRES: formatdate(time.time() + ONE_YEAR, usegmt=True),
    }


def session_cookie(request: web.BaseRequest, options: EndpointOptions) -> dict[str, str]:
    """JSESSIONID for sticky load balancers, echoed when the client sent a sane one."""
    if not options.cookie_needed:
        return {}
    value = request.cookies.get("JSESSIONID", "dummy")
    if not _COOKIE_VALUE.fullmatch(value):
        value = "dummy"
    return {hdrs.SET_COOKIE: f"JSESSIONID={value}; Path=/"}


def session_headers(request: web.BaseRequest, options: EndpointOptions) -> dict[str, str]:
    """Headers of every response on a session URL: CORS, no caching, the cookie."""
    headers = cors_headers(request, options)
    headers[hdrs.CACHE_CONTROL] = NO_CACHE
    headers.update(session_cookie(request, options))
    return headers


def preflight(request: web.BaseRequest, options: EndpointOptions, methods: str) -> web.Response:
    """Answer a CORS preflight: cacheable for a year, no body."""
    headers = cors_headers(request, options)
    headers.update(cache_for_a_year())
    headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(ONE_YEAR)
    headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = methods
    headers.update(session_cookie(request, options))
    return web.Response(status=204, headers=headers)


def error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """A plain-text error answer (the spec matches these texts)."""
    headers = dict(headers or {})
    headers[hdrs.CONTENT_TYPE] = CONTENT_TEXT
    return web.Response(status=status, body=text.encode(), headers=headers)


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) as soon as it passes ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
