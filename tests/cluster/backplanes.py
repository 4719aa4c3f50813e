"""Backplanes in one process, for the tests of `RedisBackplane` itself: a recorder standing for
the hub, and the events and states they carry (opaque to the backplane: ``{"label", "step"}``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cursorshare.hub import JSON, Change, Event, Kind, PresenceChange
from tests.cluster.procs import RedisServer, wait_for


class Recorder:
    """Stands for a hub: records what its backplane reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.changes: list[tuple[str, PresenceChange]] = []
        #: (room, member, "join"/"move"/"leave" for events, "joined"/... for changes)
        self.timeline: list[tuple[str, str, str]] = []
        self.farewells: list[tuple[str, str]] = []
        self.handovers: list[tuple[str, str]] = []

    def remote_events(self, room: str, events: list[Event]) -> None:
        self.events += [(room, event) for event in events]
        self.timeline += [(room, event.sender, event.kind.value) for event in events]

    def remote_farewell(self, room: str, member: str) -> None:
        self.farewells.append((room, member))

    def remote_handover(self, room: str, member: str) -> None:
        self.handovers.append((room, member))

    def remote_presence(self, room: str, changes: list[PresenceChange]) -> None:
        self.changes += [(room, change) for change in changes]
        self.timeline += [(room, change.member, change.kind.value) for change in changes]

    def of(self, room: str, kind: Kind | None = None) -> list[Event]:
        return [e for r, e in self.events if r == room and (kind is None or e.kind is kind)]

    def changed(self, room: str, kind: Change | None = None) -> list[PresenceChange]:
        return [c for r, c in self.changes if r == room and (kind is None or c.kind is kind)]


def state(member: str, step: float | None = None) -> JSON:
    return {"label": member.upper(), "step": step}


def join(member: str, step: float | None = None) -> tuple[Event, JSON]:
    now = state(member, step)
    return Event(Kind.JOIN, member, {"hello": member}, now), now


def move(member: str, step: float) -> tuple[Event, JSON]:
    now = state(member, step)
    return Event(Kind.MOVE, member, {"step": step}, now), now


def leave(member: str) -> Event:
    return Event(Kind.LEAVE, member, {"bye": member}, {})


async def settle(check: Callable[[], bool], within: float = 3.0) -> None:
    async def ready() -> bool:
        return check()

    await wait_for(ready, within, "condition")


async def graced_member(
    backplane: Any, redis_server: RedisServer, grace: float, *, started: bool = False
) -> JSON:
    """Member u1 of room r on ``backplane`` with a resume ``grace`` (``started``: its
    connection is lost), once its entry is in Redis; returns its state."""
    await backplane.join_room("r")
    backplane.outlive("r", "u1", grace, started=started)
    event, now = join("u1", 0.4)
    backplane.publish("r", [event], {"u1": now})
    redis = redis_server.client()
    try:

        async def written() -> bool:
            return bool(await redis.hexists(backplane.keys.presence("r"), "u1"))

        await wait_for(written, 15, "u1's entry")
    finally:
        await redis.aclose()
    return now
