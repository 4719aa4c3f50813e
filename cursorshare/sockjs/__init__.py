"""A SockJS server on aiohttp, conformant to sockjs-protocol 0.3.3.

Mount it with `add_endpoint`; the handler gets OPEN, MESSAGE, CLOSE and CLOSED events for
every session of every transport. A client that goes away mid-request is noticed at once with
aiohttp's ``handler_cancellation=True``, and within a second without it.
"""

from . import frames
from .endpoint import add_endpoint
from .manager import Handler, SessionManager
from .messages import CloseReason, MsgType, SessionState, SockjsMessage
from .options import EndpointOptions, EndpointOverrides, EndpointTuning
from .session import Session

__all__ = [
    "CloseReason",
    "EndpointOptions",
    "EndpointOverrides",
    "EndpointTuning",
    "Handler",
    "MsgType",
    "Session",
    "SessionManager",
    "SessionState",
    "SockjsMessage",
    "add_endpoint",
    "frames",
]
