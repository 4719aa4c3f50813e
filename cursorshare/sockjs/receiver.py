"""What a session asks of the connection that carries its frames to the client.

Every transport's receiving side (a poll, a stream, a websocket, a request relayed from
another node) implements `Receiver`; `Session` drives it without knowing which it is.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .messages import CloseReason


class Receiver(Protocol):
    """A receiving connection of some transport, attached to a session."""

    #: Websocket sessions end with their connection; HTTP ones wait disconnect_delay for the
    #: client's next request.
    ends_session: bool

    def wake(self) -> None:
        """The session has a frame for this receiver (take it with `Session.next_frame`)."""

    def write_buffer_size(self) -> int:
        """Bytes written but not yet sent to the client."""

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all."""

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        """End the connection without waiting for the client (it misbehaved).

        With ``tell``, what the session has for the client (its close frame last) is sent
        first; without, nothing more of the session is.
        """


@runtime_checkable
class InDoubt(Protocol):
    """A receiver whose end may already have happened elsewhere (`remote.Relay`)."""

    async def settled(self) -> None:
        """Returns once it is known whether this receiver goes on (or after a bound)."""
