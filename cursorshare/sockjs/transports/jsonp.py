"""jsonp-polling: each poll is a script calling back with one frame; jsonp_send posts a form."""

from __future__ import annotations

from aiohttp import web

from .. import frames
from ..http import CONTENT_JS, CONTENT_TEXT, preflight
from ..manager import SessionManager
from .base import HttpReceiver, Route
from .callback import callback_or_error
from .sending import receive_messages


class JsonpPolling(HttpReceiver):
    name = "jsonp"
    content_type = CONTENT_JS

    def __init__(self, manager: SessionManager, request: web.Request, callback: str) -> None:
        super().__init__(manager, request)
        self._callback = callback.encode()

    def encode(self, frame: bytes) -> bytes:
        # The leading comment defeats the Rosetta Flash attack on JSONP endpoints.
        return b"/**/" + self._callback + b"(" + frames.json_string(frame) + b");\r\n"


async def jsonp(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    callback = callback_or_error(request)
    if isinstance(callback, web.Response):
        return callback
    return await JsonpPolling(manager, request, callback).serve()


async def jsonp_send(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    # Konqueror mishandles 204, hence a 200 with a body.
    return await receive_messages(
        manager, request, form_field="d", ok_status=200, ok_body=b"ok", content_type=CONTENT_TEXT
    )


async def options(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return preflight(request, manager.options, "OPTIONS, POST")


ROUTES = (
    Route("jsonp", "GET", jsonp),
    Route("jsonp_send", "POST", jsonp_send),
    Route("jsonp_send", "OPTIONS", options),
)
