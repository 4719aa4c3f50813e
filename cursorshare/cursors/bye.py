"""``POST /presence/bye``: a closing tab's bye that does not depend on its session.

A page sends it on pagehide with ``navigator.sendBeacon``, the body its resume key as text
(``text/plain``, a CORS-simple request: no preflight, so a page on another allowed origin can
send it too). A session's own ``bye`` message loses a race on the HTTP transports: the
page's aborted receiving request may end the session first, and behind a balancer the bye
reaches another node after the owner dropped the session; its member then showed
``reconnecting`` for the whole resume grace. The key names the member wherever it is, so it
leaves at once (`CursorApp.bye`).

The answer never says whether the key named anyone (204 either way), and the work per
request is bounded: at most one store call, and ``max_byes_per_minute`` requests per client
address (past it 429, no work), so the endpoint can neither probe keys nor load the store.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from ..sockjs.abuselog import AbuseLog
from . import identity
from .app import CursorApp

log = logging.getLogger("cursorshare.cursors")

BYE_PATH = "/presence/bye"
#: Largest body read: a key is 32 characters.
MAX_BODY = 64
#: Addresses remembered by the rate limit; the oldest is forgotten first (bounded memory).
MAX_ADDRESSES = 4096


class PerAddressBudget:
    """At most ``limit`` requests per address in each ``window`` seconds (fixed windows)."""

    def __init__(
        self, limit: int, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        #: address -> (window start, requests in it)
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, address: str) -> bool:
        now = self._clock()
        start, count = self._seen.pop(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._seen[address] = (start, count + 1)
        while len(self._seen) > MAX_ADDRESSES:
            self._seen.popitem(last=False)
        return count < self.limit


def add_bye_endpoint(app: web.Application, cursors: CursorApp, *, per_minute: int) -> None:
    """Serve `BYE_PATH` for ``cursors``."""
    budget = PerAddressBudget(per_minute)
    abuse = AbuseLog(log)

    async def bye(request: web.Request) -> web.Response:
        address = request.remote or "-"
        if not budget.admit(address):
            return web.Response(status=429, text="Too many byes from this address\n")
        length = request.content_length
        if length is None or length > MAX_BODY:
            abuse.warn(address, "refused bye: body of %s bytes", length)
            text = f"The body is a resume key, with a Content-Length of at most {MAX_BODY}\n"
            return web.Response(status=413, text=text)
        key = identity.presented_key((await request.read()).decode(errors="replace").strip())
        if key is None:
            abuse.warn(address, "refused bye: not a resume key")
            return web.Response(status=400, text="The body is not a resume key\n")
        await cursors.bye(key)
        return web.Response(status=204)

    app.router.add_post(BYE_PATH, bye)
