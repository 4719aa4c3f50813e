"""Fault isolation of the hub's flush (issue #10): a room whose flush raises loses only its own
batch of that tick. Every other room of the same tick, and the same room's later ticks, are
delivered; the failure is logged once per room, with its traceback (it is a bug of ours:
input is validated before it reaches the hub); and a room that empties is always freed.

The codec and the backplane's publish raise on any event whose data carries ``"poison"``, as
`CursorCodec` did on a name holding a lone surrogate before input validation refused it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from cursorshare.hub import JSON, Event, Hub, InMemoryBackplane

TICK = 0.02
WITHIN = 5.0  # upper bound of every wait for an event


class Member:
    def __init__(self, member_id: str) -> None:
        self.id = member_id
        self.flavour = "v2"
        self.backlog = 0
        self.delivered: list[Any] = []

    def deliver(self, payload: bytes) -> None:
        self.delivered.extend(json.loads(payload))

    def overflow(self) -> None:  # never lags here
        raise AssertionError("unexpected overflow")

    def saw(self, sender: str, x: float) -> bool:
        return [sender, x] in self.delivered


class PoisonedCodec:
    def encode(self, flavour: str, events: Sequence[Event]) -> bytes | None:
        if any("poison" in event.data for event in events):
            raise TypeError("str is not valid UTF-8: surrogates not allowed")
        moves = [[e.sender, e.data["x"]] for e in events if "x" in e.data]
        return json.dumps(moves).encode() if moves else None


class TrackingBackplane(InMemoryBackplane):
    def __init__(self, *, fail_joins: int = 0) -> None:
        self.left: list[str] = []
        self.fail_joins = fail_joins

    async def join_room(self, room: str) -> list[JSON]:
        if self.fail_joins:
            self.fail_joins -= 1
            raise ConnectionError("backplane away")
        return []

    async def leave_room(self, room: str) -> None:
        self.left.append(room)

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        if any("poison" in event.data for event in events):
            raise TypeError("Integer exceeds 64-bit range")


@pytest.fixture
async def make_hub() -> AsyncIterator[Callable[..., Awaitable[Hub]]]:
    hubs: list[Hub] = []

    async def go(backplane: InMemoryBackplane | None = None) -> Hub:
        hub = Hub(PoisonedCodec(), backplane=backplane or TrackingBackplane(), tick=TICK)
        await hub.start()
        hubs.append(hub)
        return hub

    yield go
    for hub in hubs:
        await hub.stop()


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for ``predicate`` to hold (checked a few times a tick), at most ``WITHIN``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while not predicate():
        assert loop.time() < deadline, f"{what}: not within {WITHIN}s"
        await asyncio.sleep(TICK / 4)


async def join(hub: Hub, room: str, member: Member) -> None:
    await hub.join(room, member, {"id": member.id}, {"id": member.id})


def move(hub: Hub, room: str, member: Member, x: float, **extra: Any) -> None:
    hub.update(room, member, {"x": x, **extra}, {"x": x})


async def test_a_room_whose_flush_raises_does_not_stop_the_other_rooms(
    make_hub: Callable[..., Awaitable[Hub]], caplog: pytest.LogCaptureFixture
) -> None:
    hub = await make_hub()
    attacker, poisoned_watcher = Member("attacker"), Member("p-watcher")
    mover, watcher = Member("mover"), Member("watcher")
    for room, member in (("poisoned", attacker), ("poisoned", poisoned_watcher)):
        await join(hub, room, member)
    for member in (mover, watcher):
        await join(hub, "calm", member)
    for k in range(1, 4):
        # The poisoned room is dirtied first, so it is flushed first in the tick.
        move(hub, "poisoned", attacker, k, poison=True)
        move(hub, "calm", mover, k)
        await wait_until(lambda k=k: watcher.saw("mover", k), f"calm move {k} delivered")
    # A later tick of the poisoned room itself is delivered again.
    move(hub, "poisoned", attacker, 0.5)
    await wait_until(lambda: poisoned_watcher.saw("attacker", 0.5), "poisoned room recovers")
    assert not [m for m in poisoned_watcher.delivered if m[1] in (1, 2, 3)]
    assert hub.stats.flush_failures == 3
    failures = [r for r in caplog.records if r.name == "cursorshare.hub"]
    assert len(failures) == 1, "one traceback per room, not one per tick"
    assert failures[0].levelno == logging.ERROR and failures[0].exc_info
    assert "poisoned" in failures[0].getMessage()


async def test_a_room_that_empties_is_freed_even_when_its_flush_raises(
    make_hub: Callable[..., Awaitable[Hub]],
) -> None:
    backplane = TrackingBackplane()
    hub = await make_hub(backplane)
    attacker = Member("attacker")
    await join(hub, "doomed", attacker)
    await wait_until(lambda: hub.stats.encodes > 0, "the join was flushed")
    move(hub, "doomed", attacker, 1, poison=True)
    # Left in the same tick: nobody to encode for, but the publish to other nodes raises.
    hub.leave("doomed", attacker, {"id": attacker.id})
    await wait_until(lambda: "doomed" not in hub.rooms, "the empty room is freed")
    await wait_until(lambda: backplane.left == ["doomed"], "the backplane is told")
    assert hub.stats.flush_failures == 1


async def test_a_room_whose_first_join_failed_is_freed_and_can_be_joined_again(
    make_hub: Callable[..., Awaitable[Hub]],
) -> None:
    hub = await make_hub(TrackingBackplane(fail_joins=1))
    first = Member("first")
    with pytest.raises(ConnectionError):
        await join(hub, "flaky", first)
    await wait_until(lambda: "flaky" not in hub.rooms, "the room nobody got into is freed")
    second, watcher = Member("second"), Member("watcher")
    await join(hub, "flaky", second)
    await join(hub, "flaky", watcher)
    move(hub, "flaky", second, 0.25)
    await wait_until(lambda: watcher.saw("second", 0.25), "the room works again")


async def test_joiners_waiting_on_a_failed_first_join_get_a_working_room(
    make_hub: Callable[..., Awaitable[Hub]],
) -> None:
    backplane = TrackingBackplane(fail_joins=1)
    hub = await make_hub(backplane)
    first, second, third = Member("first"), Member("second"), Member("third")
    results = await asyncio.gather(
        join(hub, "race", first),
        join(hub, "race", second),
        join(hub, "race", third),
        return_exceptions=True,
    )
    assert isinstance(results[0], ConnectionError)
    assert results[1:] == [None, None]
    assert hub.rooms["race"].members.keys() == {"second", "third"}
    move(hub, "race", second, 0.75)
    await wait_until(lambda: third.saw("second", 0.75), "the waiting joiners share a room")
