"""aiohttp-sockjs's names for events, states and errors, as its programs compare them.

Both of its generations are accepted at once: 0.13's enums (`MsgType.OPEN`, `SessionState.NEW`)
and 0.11's integer constants (`MSG_OPEN`, `STATE_NEW`). The enums are integer enums with the
same values, so ``msg.type == sockjs.MSG_OPEN`` and ``msg.tp == MsgType.OPEN`` both hold.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class MsgType(enum.IntEnum):
    OPEN = 1
    MESSAGE = 2
    CLOSE = 3
    CLOSED = 4


class SessionState(enum.IntEnum):
    NEW = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Frame(enum.Enum):
    """The frame kinds of the protocol, by their first letters."""

    OPEN = "o"
    CLOSE = "c"
    MESSAGE = "a"
    MESSAGE_BLOB = "a1"
    HEARTBEAT = "h"


class SockjsMessage(NamedTuple):
    """An event for the handler: ``data`` is the text of a MESSAGE, None for OPEN and
    CLOSED, and for CLOSE None or the exception that interrupted the session."""

    type: MsgType
    data: str | BaseException | None = None

    @property
    def tp(self) -> MsgType:
        """The spelling of ``type`` older aiohttp-sockjs programs use."""
        return self.type


MSG_OPEN = MsgType.OPEN
MSG_MESSAGE = MsgType.MESSAGE
MSG_CLOSE = MsgType.CLOSE
MSG_CLOSED = MsgType.CLOSED
STATE_NEW = SessionState.NEW
STATE_OPEN = SessionState.OPEN
STATE_CLOSING = SessionState.CLOSING
STATE_CLOSED = SessionState.CLOSED

OPEN_MESSAGE = SockjsMessage(MsgType.OPEN)
CLOSE_MESSAGE = SockjsMessage(MsgType.CLOSE)
CLOSED_MESSAGE = SockjsMessage(MsgType.CLOSED)


class SockjsException(Exception):
    """Base of aiohttp-sockjs's errors."""


class SessionIsAcquired(SockjsException):
    """Another connection is attached to the session."""


class SessionIsClosed(SockjsException):
    """The session is closed."""
