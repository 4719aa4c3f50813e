"""EventSource: a `\\r\\n` prelude (an old Opera bug), then one `data:` event per frame.

sockjs-client passes every event's data through `decodeURI`, so a frame must arrive
percent-escaped where that would change it: a `%` becomes `%25` (otherwise "%20" would arrive
as a space, and a lone "100%" makes the client throw and lose the message). `\\r`, `\\n` and
NUL would end or corrupt the event; JSON already escapes them, but they are escaped here too,
as sockjs-node does, so the framing never depends on what produced the frame.
"""

from __future__ import annotations

from aiohttp import web

from ..manager import SessionManager
from .base import HttpReceiver, Route

# `%` first, so the escapes added for the other characters are not escaped again.
_PERCENT_ESCAPES = ((b"%", b"%25"), (b"\r", b"%0D"), (b"\n", b"%0A"), (b"\x00", b"%00"))


def escape_for_decode_uri(frame: bytes) -> bytes:
    """``frame`` such that the client's ``decodeURI`` gives it back unchanged."""
    for char, escaped in _PERCENT_ESCAPES:
        if char in frame:
            frame = frame.replace(char, escaped)
    return frame


class EventSource(HttpReceiver):
    name = "eventsource"
    content_type = "text/event-stream"
    streaming = True

    def prelude(self) -> bytes:
        return b"\r\n"

    def encode(self, frame: bytes) -> bytes:
        return b"data: " + escape_for_decode_uri(frame) + b"\r\n\r\n"


async def eventsource(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    return await EventSource(manager, request).serve()


ROUTES = (Route("eventsource", "GET", eventsource),)
