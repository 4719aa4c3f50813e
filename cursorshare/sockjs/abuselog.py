"""One quiet WARNING line per malformed input, rate-limited per client address.

Bad input from the open internet is expected, not a bug of ours: it gets one line without a
traceback, and an address that keeps sending it cannot fill the log (at most ``burst`` lines
per ``window`` seconds each; the rest are counted and summarised in the next line let
through). Tracebacks stay for our own exceptions.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

#: How many addresses are remembered; the oldest is forgotten first (bounded memory).
MAX_ADDRESSES = 4096


class AbuseLog:
    """Rate-limited warnings about one kind of client input, per client address."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._burst = burst
        self._window = window
        self._clock = clock
        # address -> [window start, lines logged in window, lines suppressed in window]
        self._seen: OrderedDict[str, list[float]] = OrderedDict()

    def warn(self, address: str | None, message: str, *args: object) -> bool:
        """Log ``message % args`` for ``address`` unless it is over its budget; True if logged."""
        key = address or "-"
        now = self._clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self._window:
            suppressed = int(entry[2]) if entry is not None else 0
            entry = [now, 0.0, 0.0]
            if suppressed:
                message += " (%d similar lines from this address suppressed)"
                args = (*args, suppressed)
        self._seen[key] = entry
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_ADDRESSES:
            self._seen.popitem(last=False)
        if entry[1] >= self._burst:
            entry[2] += 1
            return False
        entry[1] += 1
        self._logger.warning("%s: " + message, key, *args)
        return True
