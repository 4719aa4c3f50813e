"""aiohttp-sockjs's `sockjs.transports.websocket`, for the programs that import it."""

from . import WebSocketTransport

__all__ = ["WebSocketTransport"]
