"""The rate-limited warning log for malformed client input."""

from __future__ import annotations

import logging

import pytest

from cursorshare.sockjs.abuselog import AbuseLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_input_no_traceback_then_quiet(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    abuse = AbuseLog(logging.getLogger("test.abuse"), burst=2, window=10, clock=clock)
    with caplog.at_level(logging.WARNING, "test.abuse"):
        results = [abuse.warn("1.2.3.4", "bad frame %r", b"x") for _ in range(5)]
        assert results == [True, True, False, False, False]
        assert abuse.warn("5.6.7.8", "bad frame") is True  # another address has its own budget
        clock.now = 11
        assert abuse.warn("1.2.3.4", "bad frame") is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "1.2.3.4: bad frame b'x'"
    assert lines[-1] == "1.2.3.4: bad frame (3 similar lines from this address suppressed)"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cursorshare.sockjs.abuselog.MAX_ADDRESSES", 10)
    abuse = AbuseLog(logging.getLogger("test.abuse.bounded"))
    for i in range(100):
        abuse.warn(f"10.0.0.{i}", "x")
    assert len(abuse._seen) == 10
