"""xhr-polling and xhr-streaming (receiving), and xhr_send (sending).

Polling answers one frame per request; streaming answers 2 KiB of `h` first (browsers buffer
the start of a response before firing progress events), then newline-terminated frames.
"""

from __future__ import annotations

from aiohttp import web

from ..http import CONTENT_JS, CONTENT_TEXT, preflight
from ..manager import SessionManager
from .base import HttpReceiver, Route
from .sending import receive_messages

_PRELUDE = b"h" * 2048 + b"\n"


class XhrPolling(HttpReceiver):
    name = "xhr"
    content_type = CONTENT_JS

    def encode(self, frame: bytes) -> bytes:
        return frame + b"\n"


class XhrStreaming(XhrPolling):
    name = "xhr_streaming"
    streaming = True

    def prelude(self) -> bytes:
        return _PRELUDE


async def xhr(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return await XhrPolling(manager, request).serve()


async def xhr_streaming(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return await XhrStreaming(manager, request).serve()


async def xhr_send(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return await receive_messages(
        manager, request, form_field=None, ok_status=204, ok_body=b"", content_type=CONTENT_TEXT
    )


async def options(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return preflight(request, manager.options, "OPTIONS, POST")


ROUTES = (
    Route("xhr", "POST", xhr),
    Route("xhr", "OPTIONS", options),
    Route("xhr_send", "POST", xhr_send),
    Route("xhr_send", "OPTIONS", options),
    Route("xhr_streaming", "POST", xhr_streaming),
    Route("xhr_streaming", "OPTIONS", options),
)
