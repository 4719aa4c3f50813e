"""What the application sees of a session: event types, states and the close codes."""

from __future__ import annotations

import enum
from typing import NamedTuple


class MsgType(enum.Enum):
    """Events delivered to the endpoint's handler, in this order per session."""

    OPEN = "open"  # the session opened; the client got the `o` frame
    MESSAGE = "message"  # one message from the client (`data` is the string)
    CLOSE = "close"  # the session is closing (`data` is the CloseReason)
    CLOSED = "closed"  # the session is gone; nothing more will be sent or received


class SessionState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"  # closed, still answering later requests with its close frame
    CLOSED = "closed"


class CloseReason(NamedTuple):
    code: int
    reason: str


class SockjsMessage(NamedTuple):
    type: MsgType
    data: object = None


# Close codes. 1000-2999 are the protocol's, 3000-4999 belong to applications.
GO_AWAY = CloseReason(3000, "Go away!")
ANOTHER_CONNECTION = CloseReason(2010, "Another connection still open")
INTERRUPTED = CloseReason(1002, "Connection interrupted")
#: The client stopped polling for longer than disconnect_delay.
TIMED_OUT = CloseReason(1001, "Session timed out")
#: The client did not read what the server sent, past max_queue_bytes.
SLOW_CONSUMER = CloseReason(3008, "Slow consumer")
#: A websocket frame or raw websocket message over max_message_size.
MESSAGE_TOO_BIG = CloseReason(1009, "Message too big")
#: A websocket frame that is not a JSON array of strings.
BROKEN_FRAMING = CloseReason(3001, "Broken framing")
#: The session kept sending over max_messages_per_second after its excess was dropped.
RATE_LIMITED = CloseReason(3009, "Rate limit exceeded")
#: max_sessions or max_sessions_per_address reached (websocket; HTTP transports get a 503).
TOO_MANY_SESSIONS = CloseReason(3010, "Too many sessions")
#: The server is shutting down.
SHUTDOWN = CloseReason(1001, "Server shutting down")
#: A receiving request named an HTTP session whose node died (no sticky routing: another node
#: got it). The client reconnects as a new session; none is opened under the lost one's id.
SESSION_LOST = CloseReason(3011, "Session lost")
