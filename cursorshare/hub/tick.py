"""The hub's flush interval: the base tick while the process has CPU to spare, longer under load.

Every flush costs one write per member, and on HTTP polling one answered request per member
(each flush wakes every waiting poll). When the process is saturated, those per-flush costs
are what delays everything else: a longer tick sends the same moves, coalesced, in fewer
writes and fewer poll answers, which gives the CPU back to the requests that carry the moves
in. So the tick follows the load, measured over short windows: the process's CPU use
(`time.process_time` against the wall clock) and how late the flushes ran against their
schedule (the event loop's lag, which also shows a process that other programs keep from its
core, where the CPU use alone would stay low). Over ``busy_high`` of a core, or flushes late
on average by more than ``late_fraction`` of the base tick, it grows by ``step``, up to
``max_tick``; under ``busy_low`` and on time it shrinks back toward the base tick. The band
between the two keeps it from oscillating. With ``max_tick`` equal to the base tick it never
moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: CPU use (fraction of one core, over a window) past which the tick grows.
BUSY_HIGH = 0.85
#: CPU use under which the tick shrinks back toward the base tick.
BUSY_LOW = 0.6
#: Mean lateness of the flushes of a window, as a fraction of the base tick, past which the
#: event loop counts as saturated.
LATE_FRACTION = 0.33
#: Factor the tick changes by per window.
STEP = 1.25
#: Seconds of wall time per measurement window.
WINDOW = 0.25


class AdaptiveTick:
    """The current flush interval, re-decided every ``window`` seconds from the CPU use."""

    __slots__ = (
        "_cpu_clock",
        "_cpu_mark",
        "_flushes",
        "_lateness",
        "_wall_clock",
        "_wall_mark",
        "base",
        "busy_high",
        "busy_low",
        "current",
        "late_fraction",
        "maximum",
        "step",
        "window",
    )

    def __init__(
        self,
        base: float,
        maximum: float | None = None,
        *,
        busy_high: float = BUSY_HIGH,
        busy_low: float = BUSY_LOW,
        late_fraction: float = LATE_FRACTION,
        step: float = STEP,
        window: float = WINDOW,
        cpu_clock: Callable[[], float] = time.process_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if base <= 0:
            raise ValueError("the tick must be positive")
        maximum = base if maximum is None else maximum
        if maximum < base:
            raise ValueError("the maximum tick is below the base tick")
        if not 0 < busy_low < busy_high:
            raise ValueError("need 0 < busy_low < busy_high")
        self.base = base
        self.maximum = maximum
        self.current = base
        self.busy_high = busy_high
        self.busy_low = busy_low
        self.late_fraction = late_fraction
        self.step = step
        self.window = window
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._cpu_mark = cpu_clock()
        self._wall_mark = wall_clock()
        self._lateness = 0.0  # summed over the flushes of the current window
        self._flushes = 0

    @property
    def adaptive(self) -> bool:
        return self.maximum > self.base

    def observe(self, late: float = 0.0) -> float:
        """Called once per flush, ``late`` seconds after it was due: the tick until the next."""
        if not self.adaptive:
            return self.current
        self._lateness += late
        self._flushes += 1
        wall = self._wall_clock()
        elapsed = wall - self._wall_mark
        if elapsed < self.window:
            return self.current
        cpu = self._cpu_clock()
        busy = (cpu - self._cpu_mark) / elapsed
        late_on_average = self._lateness / self._flushes > self.late_fraction * self.base
        self._cpu_mark, self._wall_mark = cpu, wall
        self._lateness, self._flushes = 0.0, 0
        if busy >= self.busy_high or late_on_average:
            self.current = min(self.maximum, self.current * self.step)
        elif busy <= self.busy_low:  # and, as the test above failed, on time
            self.current = max(self.base, self.current / self.step)
        return self.current
