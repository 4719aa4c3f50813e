"""aiohttp-sockjs's transport classes, for the one thing its programs do with them.

Its test server (sockjs-testsrv.py) lowers the response limit of the streaming transports
before mounting its endpoints:

    from sockjs.transports.eventsource import EventsourceTransport
    EventsourceTransport.maxsize = 4096

The same import path under `cursorshare.sockjs.compat.transports` gives classes with the same
``maxsize`` attributes and defaults. Our endpoints have one response limit for all streaming
transports, so `compat.add_endpoint` reads these when it mounts an endpoint (not per request,
as aiohttp-sockjs does) and takes the smallest of the streaming ones, unless the program
passes ``response_limit`` itself. The transports themselves are ours
(cursorshare.sockjs.transports).
"""

from __future__ import annotations

from typing import ClassVar


class Transport:
    """A transport by its URL name; our endpoints do the work."""

    name: ClassVar[str] = ""


class StreamingTransport(Transport):
    #: Bytes one streaming response carries before it is ended and the client reopens it.
    maxsize: ClassVar[int] = 128 * 1024


class WebSocketTransport(Transport):
    name = "websocket"


class RawWebSocketTransport(Transport):
    name = "websocket-raw"


class XHRTransport(StreamingTransport):
    name = "xhr"
    maxsize = 0  # polling: one response per request, whatever its size


class XHRSendTransport(Transport):
    name = "xhr_send"


class XHRStreamingTransport(StreamingTransport):
    name = "xhr_streaming"


class EventsourceTransport(StreamingTransport):
    name = "eventsource"


class HTMLFileTransport(StreamingTransport):
    name = "htmlfile"


class JSONPolling(StreamingTransport):
    name = "jsonp"
    maxsize = 0  # polling, as XHRTransport


class JSONPollingSend(JSONPolling):
    name = "jsonp_send"


#: The classes by URL name, as aiohttp-sockjs lists them.
transport_handlers: dict[str, type[Transport]] = {
    cls.name: cls
    for cls in (
        WebSocketTransport,
        XHRTransport,
        XHRSendTransport,
        XHRStreamingTransport,
        JSONPolling,
        JSONPollingSend,
        HTMLFileTransport,
        EventsourceTransport,
    )
}

#: The transports whose responses stream, so whose ``maxsize`` is a response limit.
STREAMING: tuple[type[StreamingTransport], ...] = (
    XHRStreamingTransport,
    EventsourceTransport,
    HTMLFileTransport,
)


def response_limit() -> int:
    """The response limit the program's ``maxsize`` settings ask for, read now."""
    return min(cls.maxsize for cls in STREAMING)


__all__ = [
    "EventsourceTransport",
    "HTMLFileTransport",
    "JSONPolling",
    "JSONPollingSend",
    "RawWebSocketTransport",
    "StreamingTransport",
    "Transport",
    "WebSocketTransport",
    "XHRSendTransport",
    "XHRStreamingTransport",
    "XHRTransport",
    "transport_handlers",
]
