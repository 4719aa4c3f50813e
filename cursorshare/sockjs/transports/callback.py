"""The `c` callback parameter of the script transports (jsonp, htmlfile)."""

from __future__ import annotations

import re

from aiohttp import web

from ..http import error

# Names sockjs-client generates look like `_jp.a1b2c3d`; nothing else may reach a script.
_CALLBACK = re.compile(r"[A-Za-z0-9_.\-]{1,32}")


def callback_or_error(request: web.Request) -> str | web.Response:
    """The validated callback name, or the spec's 500 answer."""
    callback = request.query.get("c")
    if not callback:
        return error(500, '"callback" parameter required')
    if not _CALLBACK.fullmatch(callback):
        return error(500, 'invalid "callback" parameter')
    return callback
