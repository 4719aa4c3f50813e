"""aiohttp-sockjs's `sockjs.transports.htmlfile`, for the programs that import it."""

from . import HTMLFileTransport

__all__ = ["HTMLFileTransport"]
