"""The SockJS transports, each a small route table over a shared receiver."""

from . import eventsource, htmlfile, jsonp, websocket, xhr
from .base import Route

ROUTES: tuple[Route, ...] = (
    *websocket.ROUTES,
    *xhr.ROUTES,
    *eventsource.ROUTES,
    *htmlfile.ROUTES,
    *jsonp.ROUTES,
)

__all__ = ["ROUTES", "Route"]
