"""The bounds on dropped members (kept "reconnecting" for a resume): per client address and
per process. The finding: "members kept for the grace are not counted against max_sessions or
the per-address limit. A client that opens and closes sessions quickly can leave many behind
for 120 s." Past a bound, the oldest dropped member (of that address) leaves at once."""

from __future__ import annotations

from typing import Any

import pytest

from cursorshare.config import Settings
from cursorshare.cursors.dropped import DroppedMembers

from .conftest import SETTINGS, Connect, is_leave, is_presence, welcome_of


async def dropped_in_turn(connect: Connect, room: str, count: int) -> tuple[Any, list[Any]]:
    """A watcher, and ``count`` members of ``room`` whose sessions drop one after the other
    (each seen reconnecting by the watcher before the next drops)."""
    watcher = await connect("websocket", room=room)
    await welcome_of(watcher)
    tabs = []
    for _ in range(count):
        tab = await connect("websocket", room=room)
        tabs.append((tab, await welcome_of(tab)))
    for tab, welcome in tabs:
        await tab.close()
        await watcher.recv_json_until(is_presence(welcome["id"], "reconnecting"))
    return watcher, [welcome for _, welcome in tabs]


class TestPerAddress:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(**{**SETTINGS.__dict__, "max_dropped_per_address": 2})

    async def test_past_the_bound_the_oldest_dropped_member_leaves_at_once(
        self, connect: Connect
    ) -> None:
        watcher, (oldest, second, third) = await dropped_in_turn(connect, "churn", 3)
        await watcher.recv_json_until(is_leave(oldest["id"]))  # long before the 30 s grace
        told = [(m.get("type"), m.get("id")) for m in watcher.skipped]
        assert ("leave", second["id"]) not in told and ("leave", third["id"]) not in told
        # Its key gives nothing back; the two kept ones resume.
        again = await connect("websocket", room="churn", resume=oldest["resume"])
        assert (await welcome_of(again))["resumed"] is False
        for kept in (second, third):
            tab = await connect("websocket", room="churn", resume=kept["resume"])
            welcome = await welcome_of(tab)
            assert (welcome["resumed"], welcome["id"]) == (True, kept["id"])


class TestOverall:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(**{**SETTINGS.__dict__, "max_dropped": 1})

    async def test_past_the_bound_the_oldest_dropped_member_of_any_room_leaves(
        self, connect: Connect
    ) -> None:
        watcher, (first,) = await dropped_in_turn(connect, "one", 1)
        _, (second,) = await dropped_in_turn(connect, "two", 1)
        await watcher.recv_json_until(is_leave(first["id"]))
        tab = await connect("websocket", room="two", resume=second["resume"])
        assert (await welcome_of(tab))["resumed"] is True


class Dropped:
    def __init__(self, member_id: str, address: str) -> None:
        self.id = member_id
        self.address = address


def test_the_bounds_count_each_address_apart_and_every_address_together() -> None:
    dropped: DroppedMembers[Dropped] = DroppedMembers(per_address=2, total=3)
    a1, a2, a3 = (Dropped(f"a{i}", "10.0.0.1") for i in range(1, 4))
    b1, b2 = Dropped("b1", "10.0.0.2"), Dropped("b2", "10.0.0.2")
    assert dropped.add(a1) == [] and dropped.add(b1) == [] and dropped.add(a2) == []
    assert dropped.add(a3) == [a1]  # past its address's bound: that address's oldest
    assert dropped.add(b2) == [b1]  # past the overall bound: the oldest of every address
    assert len(dropped) == 3
    assert (dropped.of_address("10.0.0.1"), dropped.of_address("10.0.0.2")) == (2, 1)
    assert dropped.pop("b2") is b2 and dropped.pop("b2") is None
    assert "a3" in dropped and "a1" not in dropped
