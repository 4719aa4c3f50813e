"""A SockJS server on aiohttp, conformant to sockjs-protocol 0.3.3.

Mount it with `add_endpoint`; the handler gets OPEN, MESSAGE, CLOSE and CLOSED events for
every session of every transport. Run the application with ``handler_cancellation=True``
(as ``web.run_app(app, handler_cancellation=True)`` or aiohttp's test server do) so an
aborted poll is noticed at once rather than at its next write.
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
