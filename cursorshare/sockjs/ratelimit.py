"""The inbound budget of one session: a token bucket with an abuse rule.

Every unit a client sends costs a token: a message on any transport, and on a websocket also
every frame that carries no message (empty frames, fragments, pings, pongs). A unit arriving
with the bucket empty is over budget (a message is dropped); a client that stays over budget
for half of an abuse window's allowance is flooding and is closed. Short bursts lose their
excess and carry on; a client within its rate never notices the limiter.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

#: Window of the abuse rule: more than half this window's worth of the allowed rate over
#: budget within it, and the sender is flooding.
ABUSE_SECONDS = 10.0


class Verdict(enum.Enum):
    ADMIT = "admit"  # within budget
    DROP = "drop"  # over budget: drop what it paid for
    ABUSE = "abuse"  # over budget for too long: close the sender


class RateLimiter:
    """``rate`` units a second sustained, bursts up to ``2 * rate``; full at start."""

    __slots__ = ("_abuse_seconds", "_clock", "_over", "_rate", "_tokens", "_tokens_at", "_window")

    def __init__(
        self,
        rate: float,
        *,
        abuse_seconds: float = ABUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._abuse_seconds = abuse_seconds
        self._clock = clock
        self._tokens = 2 * rate
        self._tokens_at = clock()
        self._window = -abuse_seconds  # start of the current abuse window
        self._over = 0  # units over budget in the current abuse window

    def admit(self, cost: int = 1) -> Verdict:
        """Charge ``cost`` units (all or nothing)."""
        now = self._clock()
        rate = self._rate
        self._tokens = min(2 * rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return Verdict.ADMIT
        if now - self._window > self._abuse_seconds:
            self._window = now
            self._over = 0
        self._over += cost
        if self._over > rate * self._abuse_seconds / 2:
            return Verdict.ABUSE
        return Verdict.DROP
