"""aiohttp-sockjs's `sockjs.transports.eventsource`, for the programs that import it."""

from . import EventsourceTransport

__all__ = ["EventsourceTransport"]
