"""aiohttp-sockjs's `sockjs.transports.rawwebsocket`, for the programs that import it."""

from . import RawWebSocketTransport

__all__ = ["RawWebSocketTransport"]
