"""aiohttp-sockjs's `sockjs.transports.xhr_pooling`, for the programs that import it."""

from . import XHRSendTransport, XHRTransport

__all__ = ["XHRSendTransport", "XHRTransport"]
