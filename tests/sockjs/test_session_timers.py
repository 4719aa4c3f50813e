"""A polling session's timers: deadlines as the spec gives them, at a constant cost per poll.

An xhr-polling client attaches and detaches a receiver once per answered poll (up to once per
hub tick). The session's heartbeat is due `heartbeat_delay` after a receiver attached, its
expiry `disconnect_delay` after the last one detached; what a poll costs must not include
arming and cancelling both timers (issue #14's profile: four timer operations per poll).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from cursorshare.sockjs import MsgType, Session, SockjsMessage
from cursorshare.sockjs.messages import CloseReason
from cursorshare.sockjs.options import EndpointOptions
from cursorshare.sockjs.stats import EndpointStats

WITHIN = 5.0


class Owner:
    """What a session needs of its endpoint; records the events and the removal."""

    def __init__(self, **options: Any) -> None:
        self.options = EndpointOptions(**options)
        self.stats = EndpointStats()
        self.events: list[MsgType] = []
        self.removed = asyncio.get_running_loop().create_future()

    async def dispatch(self, session: Session, message: SockjsMessage) -> None:
        self.events.append(message.type)

    def begin_open(self, session: Session) -> asyncio.Task[None]:
        opening = SockjsMessage(MsgType.OPEN)
        return asyncio.get_running_loop().create_task(self.dispatch(session, opening))

    def emit(self, session: Session, message: SockjsMessage) -> None:
        self.events.append(message.type)

    def remove(self, session: Session) -> None:
        if not self.removed.done():
            self.removed.set_result(asyncio.get_running_loop().time())


class Poll:
    """A receiver that records when it was woken."""

    ends_session = False

    def __init__(self) -> None:
        self.woken = asyncio.get_running_loop().create_future()

    def wake(self) -> None:
        if not self.woken.done():
            self.woken.set_result(asyncio.get_running_loop().time())

    def write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        pass

    def fail(self, reason: CloseReason, *, tell: bool) -> None:
        pass


class TimerCount:
    """Counts the timers the running loop is asked for (call_at and call_later)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("call_at", "call_later"):
            monkeypatch.setattr(loop, name, self._counted(getattr(loop, name)))

    def _counted(self, original: Callable[..., asyncio.TimerHandle]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            self.count += 1
            return original(*args, **kwargs)

        return call


async def poll_many_times(session: Session, polls: int) -> None:
    for _ in range(polls):
        receiver = Poll()
        assert await session.connect(receiver)
        session.detach(receiver)


async def test_a_hundred_polls_arm_a_constant_number_of_timers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = Owner(heartbeat_delay=25.0, disconnect_delay=5.0)
    session = Session(owner, "s", transport="xhr", request=None)
    timers = TimerCount(asyncio.get_running_loop(), monkeypatch)
    await poll_many_times(session, 100)
    assert timers.count <= 2, f"{timers.count} timers for 100 polls"
    await session.opened()  # OPEN runs beside the first poll, which has `o` at once
    assert owner.events == [MsgType.OPEN]
    session.expire()


async def test_the_session_expires_disconnect_delay_after_its_last_poll() -> None:
    owner = Owner(heartbeat_delay=25.0, disconnect_delay=0.2)
    session = Session(owner, "s", transport="xhr", request=None)
    loop = asyncio.get_running_loop()
    await poll_many_times(session, 20)
    # More polls, spread over longer than disconnect_delay: the first expiry timer fires
    # while the session is still being polled and must not end it.
    for _ in range(3):
        await asyncio.sleep(0.1)
        await poll_many_times(session, 1)
    last_detach = loop.time()
    expired_at = await asyncio.wait_for(owner.removed, WITHIN)
    assert expired_at >= last_detach + 0.2 - 0.001
    assert owner.events == [MsgType.OPEN, MsgType.CLOSE, MsgType.CLOSED]


async def test_the_heartbeat_is_due_heartbeat_delay_after_the_current_poll_attached() -> None:
    owner = Owner(heartbeat_delay=0.2, disconnect_delay=5.0)
    session = Session(owner, "s", transport="xhr", request=None)
    loop = asyncio.get_running_loop()
    first = Poll()
    assert await session.connect(first)
    assert session.next_frame() == b"o"
    session.detach(first)
    await asyncio.sleep(0.1)  # the first heartbeat timer is now half-way
    waiting = Poll()
    attached_at = loop.time()
    assert await session.connect(waiting)
    woken_at = await asyncio.wait_for(waiting.woken, WITHIN)
    assert woken_at >= attached_at + 0.2 - 0.001
    assert session.next_frame() == b"h"
    session.detach(waiting)
    session.expire()


async def test_no_heartbeat_reaches_a_session_without_a_receiver() -> None:
    owner = Owner(heartbeat_delay=0.05, disconnect_delay=0.3)
    session = Session(owner, "s", transport="xhr", request=None)
    poll = Poll()
    assert await session.connect(poll)
    assert session.next_frame() == b"o"
    session.detach(poll)
    await asyncio.wait_for(owner.removed, WITHIN)  # past several heartbeat delays
    assert session.next_frame() is None
    assert not poll.woken.done()
