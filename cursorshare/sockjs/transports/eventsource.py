"""EventSource: a `\\r\\n` prelude (an old Opera bug), then one `data:` event per frame.

Frames are JSON, so they never hold the newlines or leading spaces the format would mangle.
"""

from __future__ import annotations

from aiohttp import web

from ..manager import SessionManager
from .base import HttpReceiver, Route


class EventSource(HttpReceiver):
    name = "eventsource"
    content_type = "text/event-stream"
    streaming = True

    def prelude(self) -> bytes:
        return b"\r\n"

    def encode(self, frame: bytes) -> bytes:
        return b"data: " + frame + b"\r\n\r\n"


async def eventsource(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return await EventSource(manager, request).serve()


ROUTES = (Route("eventsource", "GET", eventsource),)
