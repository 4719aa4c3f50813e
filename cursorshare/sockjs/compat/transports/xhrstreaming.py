"""aiohttp-sockjs's `sockjs.transports.xhrstreaming`, for the programs that import it."""

from . import XHRStreamingTransport

__all__ = ["XHRStreamingTransport"]
