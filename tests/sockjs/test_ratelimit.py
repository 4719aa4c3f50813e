"""The inbound budget (`RateLimiter`), on a clock the test turns by hand."""

from __future__ import annotations

from cursorshare.sockjs.ratelimit import RateLimiter, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_bucket_of_two_seconds_then_drops() -> None:
    clock = Clock()
    limiter = RateLimiter(10, abuse_seconds=10, clock=clock)
    assert [limiter.admit() for _ in range(20)] == [Verdict.ADMIT] * 20
    assert limiter.admit() is Verdict.DROP


def test_refills_at_the_rate_and_never_past_the_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(10, abuse_seconds=10, clock=clock)
    for _ in range(20):
        limiter.admit()
    clock.now += 0.5  # five tokens back
    assert [limiter.admit() for _ in range(6)] == [Verdict.ADMIT] * 5 + [Verdict.DROP]
    clock.now += 3600
    assert sum(limiter.admit() is Verdict.ADMIT for _ in range(25)) == 20


def test_cost_is_all_or_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(10, abuse_seconds=10, clock=clock)
    assert limiter.admit(15) is Verdict.ADMIT
    assert limiter.admit(6) is Verdict.DROP  # five left: nothing taken
    assert limiter.admit(5) is Verdict.ADMIT


def test_over_half_a_window_over_budget_is_abuse() -> None:
    clock = Clock()
    limiter = RateLimiter(10, abuse_seconds=10, clock=clock)
    limiter.admit(20)
    verdicts = [limiter.admit() for _ in range(51)]  # 10 * 10 / 2 = 50 allowed over budget
    assert verdicts[:50] == [Verdict.DROP] * 50
    assert verdicts[50] is Verdict.ABUSE
    assert RateLimiter(10, abuse_seconds=10, clock=clock).admit(1000) is Verdict.ABUSE


def test_a_new_window_forgets_the_old_drops() -> None:
    clock = Clock()
    limiter = RateLimiter(10, abuse_seconds=10, clock=clock)
    limiter.admit(20)
    for _ in range(40):
        assert limiter.admit() is Verdict.DROP
    clock.now += 10.5  # a new window; the bucket is full again
    limiter.admit(20)
    for _ in range(40):
        assert limiter.admit() is Verdict.DROP
