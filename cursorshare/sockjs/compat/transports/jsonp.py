"""aiohttp-sockjs's `sockjs.transports.jsonp`, for the programs that import it."""

from . import JSONPolling, JSONPollingSend

__all__ = ["JSONPolling", "JSONPollingSend"]
