"""The adaptive tick: the flush interval follows the process's CPU use, within its bounds.

Clocks are fakes the tests advance, so every decision is exact and nothing waits for time.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from cursorshare.config import Settings
from cursorshare.hub import Hub
from cursorshare.hub.tick import AdaptiveTick
from cursorshare.metrics import REGISTRY
from cursorshare.server import HUB, build_app

from .test_hub import CountingCodec, FakeMember


class FakeClocks:
    """A wall clock and a CPU clock that only move when told."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def spend(self, seconds: float, busy: float) -> None:
        """``seconds`` of wall time pass, ``busy`` of them (a fraction) on the CPU."""
        self.wall += seconds
        self.cpu += seconds * busy


def ticker(clocks: FakeClocks, base: float = 0.03, maximum: float | None = 0.1) -> AdaptiveTick:
    return AdaptiveTick(
        base, maximum, window=0.25, cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall
    )


def test_a_saturated_process_lengthens_the_tick_step_by_step_up_to_the_maximum() -> None:
    clocks = FakeClocks()
    tick = ticker(clocks)
    seen = []
    for _ in range(12):
        clocks.spend(0.25, busy=1.0)
        seen.append(tick.observe())
    assert seen[0] == pytest.approx(0.03 * tick.step)
    assert seen == sorted(seen), "it only grows while the process stays saturated"
    assert seen[-1] == pytest.approx(0.1)
    assert max(seen) <= 0.1


def test_an_idle_process_brings_the_tick_back_to_the_base() -> None:
    clocks = FakeClocks()
    tick = ticker(clocks)
    for _ in range(12):
        clocks.spend(0.25, busy=1.0)
        tick.observe()
    for _ in range(12):
        clocks.spend(0.25, busy=0.1)
        tick.observe()
    assert tick.current == pytest.approx(0.03)


def test_between_the_two_thresholds_the_tick_holds() -> None:
    clocks = FakeClocks()
    tick = ticker(clocks)
    for _ in range(3):
        clocks.spend(0.25, busy=1.0)
        tick.observe()
    held = tick.current
    for _ in range(10):
        clocks.spend(0.25, busy=(tick.busy_low + tick.busy_high) / 2)
        assert tick.observe() == held


def test_the_tick_is_decided_once_per_window_not_per_flush() -> None:
    clocks = FakeClocks()
    tick = ticker(clocks)
    for _ in range(7):  # 7/8 of a window of flushes (steps exact in binary)
        clocks.spend(0.03125, busy=1.0)
        assert tick.observe() == 0.03
    clocks.spend(0.03125, busy=1.0)
    assert tick.observe() > 0.03


def test_late_flushes_lengthen_the_tick_even_when_the_process_gets_little_cpu() -> None:
    # A process that other programs keep from its core: low CPU use, but its event loop runs
    # every flush late. That is saturation too.
    clocks = FakeClocks()
    tick = ticker(clocks)
    for _ in range(12):
        clocks.spend(0.25, busy=0.5)
        tick.observe(late=0.02)
    assert tick.current == pytest.approx(0.1)
    for _ in range(12):  # on time again, and little CPU: back to the base
        clocks.spend(0.25, busy=0.5)
        tick.observe(late=0.001)
    assert tick.current == pytest.approx(0.03)


def test_without_a_maximum_above_the_base_the_tick_never_moves() -> None:
    clocks = FakeClocks()
    tick = ticker(clocks, maximum=None)
    for _ in range(10):
        clocks.spend(0.25, busy=1.0)
        assert tick.observe() == 0.03
    assert not tick.adaptive


@pytest.mark.parametrize(("base", "maximum"), [(0.0, 0.1), (0.05, 0.03)])
def test_impossible_bounds_are_refused(base: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="tick"):
        AdaptiveTick(base, maximum)


async def test_the_hub_flushes_on_the_adapted_tick() -> None:
    clocks = FakeClocks()
    hub = Hub(CountingCodec(), ticker=ticker(clocks))
    await hub.start()
    try:
        member = FakeMember("a")
        await hub.join("r", member, {}, {})
        for x in range(8):  # a saturated process: every flush window is fully busy
            hub.update("r", member, {"x": x}, {"x": x})
            clocks.spend(0.25, busy=1.0)
            hub.flush()
        assert hub.tick == pytest.approx(0.1)
        # The events of those flushes were all delivered, one payload per flush.
        assert [event[2] for event in member.events() if event[0] == "move"] == list(range(8))
        hub.update("r", member, {"x": 8}, {"x": 8})
        handle = hub._flush_handle  # the next flush is one adapted tick after the last one
        assert handle is not None
        assert handle.when() == pytest.approx(hub._last_flush + 0.1)
    finally:
        await hub.stop()


def test_the_server_adapts_between_its_two_tick_settings() -> None:
    hub = build_app(Settings(tick_ms=20, max_tick_ms=80))[HUB]
    assert (hub.ticker.base, hub.ticker.maximum) == (pytest.approx(0.02), pytest.approx(0.08))
    fixed = build_app(Settings(tick_ms=20, max_tick_ms=0))[HUB]
    assert not fixed.ticker.adaptive
    assert Settings().max_tick_ms == 100.0


def test_metrics_show_the_current_tick() -> None:
    app = build_app(Settings(tick_ms=20, max_tick_ms=80))
    app[HUB].ticker.current = 0.05  # as if load had lengthened it
    text = generate_latest(app[REGISTRY]).decode()
    assert "cursorshare_hub_tick_seconds 0.05\n" in text, text
