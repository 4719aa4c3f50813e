"""The broadcast hub: rooms, per-tick coalescing, encode once, fan out.

Every member of every transport joins the one hub of its process. Events are queued into
their room; a room with pending events is flushed at most once per tick: its batch (moves
coalesced, latest wins) is encoded once per flavour of receiver and the same bytes are handed
to each member. A member that falls behind (its backlog over ``lag_bytes``) stops receiving
shared batches and gets its own coalescing batch instead, so its backlog stays the size of
its room; it is caught up in one payload once it has drained, or told it overflowed.

The hub keeps each room's presence (member id -> opaque state, local and remote members) for
newcomers' snapshots; it never looks inside a state. Changes a backplane infers by itself
reach it as presence changes, which the app's `Translator` turns into events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .backplane import Backplane, InMemoryBackplane
from .contracts import Codec, Member
from .events import JSON, Batch, Event, Kind
from .presence import Change, PresenceChange, PresenceRecord, RecordTranslator, Translator
from .tick import AdaptiveTick

log = logging.getLogger("cursorshare.hub")


@dataclass(slots=True, eq=False)
class Room:
    name: str
    members: dict[str, Member] = field(default_factory=dict)
    by_flavour: dict[str, dict[str, Member]] = field(default_factory=dict)
    #: Everyone present (any node): member id -> its state, what newcomers are told.
    presence: dict[str, JSON] = field(default_factory=dict)
    batch: Batch = field(default_factory=Batch)
    #: Local users whose presence changed since the last publish (None: they left).
    changed: dict[str, JSON | None] = field(default_factory=dict)
    #: Set once the backplane has reported the users on other nodes.
    ready: asyncio.Future[None] | None = None
    #: A flush of this room raised once already (it was logged then).
    flush_failed: bool = False


@dataclass(slots=True, eq=False)
class Lagging:
    batch: Batch
    since: float


@dataclass(slots=True)
class HubStats:
    events_in: int = 0
    coalesced: int = 0
    payloads_out: int = 0
    bytes_out: int = 0
    encodes: int = 0
    overflows: int = 0
    #: Room flushes (or lagging members' catch-ups) that raised; their batch was dropped.
    flush_failures: int = 0


class Hub:
    def __init__(
        self,
        codec: Codec,
        *,
        backplane: Backplane | None = None,
        translator: Translator | None = None,
        tick: float = 0.03,
        max_tick: float | None = None,
        ticker: AdaptiveTick | None = None,
        lag_bytes: int = 64 * 1024,
        max_lag_seconds: float = 30.0,
        max_lag_events: int = 10_000,
    ) -> None:
        self.codec = codec
        self.backplane = backplane or InMemoryBackplane()
        self.translator = translator or RecordTranslator()
        #: The flush interval: ``tick`` while the process has CPU to spare, up to ``max_tick``
        #: under load (`AdaptiveTick`; without ``max_tick`` it stays ``tick``).
        self.ticker = ticker or AdaptiveTick(tick, max_tick)
        self.lag_bytes = lag_bytes
        self.max_lag_seconds = max_lag_seconds
        self.max_lag_events = max_lag_events
        self.stats = HubStats()
        self._rooms: dict[str, Room] = {}
        self._dirty: dict[Room, None] = {}
        self._lagging: dict[Member, Lagging] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_due = 0.0
        self._last_flush = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Ends a local member for good when another node asks (`remote_farewell`).
        self.farewell_handler: Callable[[str, Member], None] | None = None
        #: Lets a local member go when another node took it over (`remote_handover`).
        self.handover_handler: Callable[[str, Member], None] | None = None

    @property
    def tick(self) -> float:
        """The current flush interval in seconds."""
        return self.ticker.current

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.backplane.start(self)

    async def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backplane.stop()

    # -- members ------------------------------------------------------------------------------

    @property
    def rooms(self) -> dict[str, Room]:
        return self._rooms

    def presence(self, room_name: str) -> list[PresenceRecord]:
        """Everyone present in a room, on any node."""
        room = self._rooms.get(room_name)
        if room is None:
            return []
        return [PresenceRecord(member, state) for member, state in room.presence.items()]

    async def everyone_in(self, room_name: str) -> list[PresenceRecord]:
        """Everyone present in a room, on any node, opening it here (asking the backplane)
        when no member of this node is in it; it is closed again if nobody joins it."""
        room = await self._open(room_name)
        self._mark_dirty(room)  # the next flush frees it if nobody joined meanwhile
        return self.presence(room_name)

    async def join(
        self, room_name: str, member: Member, data: JSON, state: JSON, *, grace: float = 0.0
    ) -> list[PresenceRecord]:
        """Add ``member`` to a room with its whole ``state``; returns everyone already there.
        ``grace``: how long it outlives this node, should the node die (`Backplane.outlive`)."""
        room = await self._open(room_name)
        snapshot = self.presence(room_name)
        self.backplane.outlive(room_name, member.id, grace)
        room.members[member.id] = member
        room.by_flavour.setdefault(member.flavour, {})[member.id] = member
        room.presence[member.id] = state
        room.changed[member.id] = state
        self._add(room, Event(Kind.JOIN, member.id, data, state))
        return snapshot

    async def _open(self, room_name: str) -> Room:
        """The room, once the backplane has reported who is in it on other nodes."""
        room = self._rooms.get(room_name)
        while room is not None and room.ready is not None and not room.ready.done():
            await asyncio.shield(room.ready)
            room = self._rooms.get(room_name)  # gone if its first join failed meanwhile
        if room is None:
            room = Room(room_name, ready=asyncio.get_running_loop().create_future())
            self._rooms[room_name] = room
            try:
                for record in await self.backplane.join_room(room_name):
                    state_now = record.state
                    if record.orphaned:
                        state_now = self.translator.orphan(record.state)
                    room.presence[record.member] = state_now
            except BaseException:
                self._mark_dirty(room)  # nobody got in: the next flush frees it
                raise
            finally:
                assert room.ready is not None
                room.ready.set_result(None)
        return room

    def update(self, room_name: str, member: Member, data: JSON, state: JSON) -> None:
        """``member``'s state is now ``state`` (whole); receivers are told ``data``, unless a
        later update of the same tick replaces it."""
        self._change(Kind.MOVE, room_name, member, data, state)

    def notify(self, room_name: str, member: Member, data: JSON, state: JSON) -> None:
        """Like `update`, but receivers are always told ``data`` (never coalesced away)."""
        self._change(Kind.NOTICE, room_name, member, data, state)

    def _change(self, kind: Kind, room_name: str, member: Member, data: JSON, state: JSON) -> None:
        room = self._rooms.get(room_name)
        if room is None or member.id not in room.members:
            return
        room.presence[member.id] = state
        room.changed[member.id] = state
        self._add(room, Event(kind, member.id, data, state))

    def leave(self, room_name: str, member: Member, data: JSON) -> None:
        room = self._rooms.get(room_name)
        if room is None or not self._remove(room, member.id):
            return
        room.presence.pop(member.id, None)
        self._add(room, Event(Kind.LEAVE, member.id, data, {}))

    def _remove(self, room: Room, member_id: str) -> bool:
        """Take a local member out of ``room`` (its presence record stays for the caller to
        settle); False when it was not there."""
        member = room.members.pop(member_id, None)
        if member is None:
            return False
        flavour = room.by_flavour.get(member.flavour)
        if flavour is not None:
            flavour.pop(member_id, None)
            if not flavour:
                del room.by_flavour[member.flavour]
        self._lagging.pop(member, None)
        room.changed[member_id] = None
        return True

    # -- what the backplane reports (RemoteListener) -------------------------------------------

    def remote_events(self, room_name: str, events: list[Event]) -> None:
        room = self._rooms.get(room_name)
        if room is None:
            return
        for event in events:
            if self._moved_away(room, event.sender, joined=event.kind is Kind.JOIN):
                continue
            if event.kind is Kind.LEAVE:
                room.presence.pop(event.sender, None)
            else:
                room.presence[event.sender] = event.state
            room.batch.add(event)
        self._mark_dirty(room)

    def remote_presence(self, room_name: str, changes: list[PresenceChange]) -> None:
        room = self._rooms.get(room_name)
        if room is None:
            return
        for change in changes:
            if self._moved_away(room, change.member, joined=False):
                continue
            if change.kind is Change.ORPHANED:
                known = room.presence.get(change.member)
                state = self.translator.orphan(change.state)
                if known == state:
                    continue  # receivers know already (its node told them before it stopped)
                kind = Change.JOINED if known is None else Change.ORPHANED
                change = PresenceChange(kind, change.member, state)
            if change.kind is Change.LEFT:
                room.presence.pop(change.member, None)
            else:
                room.presence[change.member] = change.state
            for event in self.translator.events(change):
                event.local = False  # another node's member: never published from here
                room.batch.add(event)
        self._mark_dirty(room)

    def remote_farewell(self, room_name: str, member_id: str) -> None:
        """Another node asks: end ``member_id`` for good if it is here (`Backplane.farewell`)."""
        room = self._rooms.get(room_name)
        member = None if room is None else room.members.get(member_id)
        if member is not None and self.farewell_handler is not None:
            self.farewell_handler(room_name, member)

    def remote_handover(self, room_name: str, member_id: str) -> None:
        """Another node took ``member_id`` over (`Backplane.hand_over`): if it is here, the app
        lets it go, and it leaves this node silently; its presence is the other node's now."""
        room = self._rooms.get(room_name)
        member = None if room is None else room.members.get(member_id)
        if room is None or member is None:
            return
        if self.handover_handler is not None:
            self.handover_handler(room_name, member)
        self._remove(room, member_id)
        self._mark_dirty(room)

    def _moved_away(self, room: Room, member_id: str, *, joined: bool) -> bool:
        """Settle news from another node of a member that is local here; True: ignore it.

        Only a join says another node holds it now (an app resumed it there, and told this
        node to let it go: `remote_handover`): it ends here silently, receivers told the join.
        Anything else of it from elsewhere is stale: a departure, a sweep's or a reconcile's
        snapshot, or the news of a node that lost it while stalled (its drop, its presence
        re-written once it found itself taken for dead), which must not end it here."""
        if member_id not in room.members:
            return False
        if not joined:
            return True
        self._remove(room, member_id)
        return False

    # -- flushing -------------------------------------------------------------------------------

    def _add(self, room: Room, event: Event) -> None:
        self.stats.events_in += 1
        room.batch.add(event)
        self._mark_dirty(room)

    def _mark_dirty(self, room: Room) -> None:
        self._dirty[room] = None
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        # At most one flush per tick; an event after a quiet spell goes out at once.
        self._flush_due = when = max(loop.time(), self._last_flush + self.tick)
        self._flush_handle = loop.call_at(when, self.flush)

    def flush(self) -> None:
        """Send every room's pending batch; runs at most once per tick (which adapts to load).

        Rooms are isolated from one another: a room whose flush raises (a bug of ours: input
        is validated before it reaches the hub) loses that tick's batch, and is logged the
        first time; every other room, and the next tick, is flushed as usual.
        """
        self._flush_handle = None
        loop = asyncio.get_running_loop()
        self._last_flush = now = loop.time()
        self.ticker.observe(late=max(0.0, now - self._flush_due))
        dirty, self._dirty = self._dirty, {}
        for room in dirty:
            try:
                self._flush_room(room, now)
            except Exception:
                self._flush_failed(room)
            finally:
                self._free_if_empty(room)
        if self._lagging:
            self._catch_up(now)
            self._schedule()

    def _flush_failed(self, room: Room) -> None:
        self.stats.flush_failures += 1
        if not room.flush_failed:  # one traceback per room, not one per tick
            room.flush_failed = True
            log.exception("flushing room %r failed; its batch was dropped", room.name)

    def _flush_room(self, room: Room, now: float) -> None:
        self.stats.coalesced += room.batch.coalesced
        room.batch.coalesced = 0
        events = room.batch.take()
        if room.changed:
            local = [event for event in events if event.local]
            changed, room.changed = room.changed, {}
            self.backplane.publish(room.name, local, changed)
        for flavour, members in room.by_flavour.items():
            payload = self.codec.encode(flavour, events)
            self.stats.encodes += 1
            if payload is None:
                continue
            for member in members.values():
                lagging = self._lagging.get(member)
                if lagging is not None:
                    lagging.batch.extend(events)
                elif member.backlog > self.lag_bytes:
                    batch = Batch()
                    batch.extend(events)
                    self._lagging[member] = Lagging(batch, now)
                else:
                    self._deliver(member, payload)

    def _free_if_empty(self, room: Room) -> None:
        """Forget a room nobody (of this node) is in, once nothing is pending for it."""
        if room.members or room.batch or (room.ready is not None and not room.ready.done()):
            return
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
            self._spawn(self.backplane.leave_room(room.name))

    def _deliver(self, member: Member, payload: bytes) -> None:
        member.deliver(payload)
        self.stats.payloads_out += 1
        self.stats.bytes_out += len(payload)

    def _catch_up(self, now: float) -> None:
        for member, lagging in list(self._lagging.items()):
            if member.backlog <= self.lag_bytes // 2:
                del self._lagging[member]
                try:
                    payload = self.codec.encode(member.flavour, lagging.batch.take())
                except Exception:  # like a room's flush: that member's batch only is lost
                    self.stats.flush_failures += 1
                    log.exception("catching up member %s failed", member.id)
                    continue
                self.stats.encodes += 1
                if payload is not None:
                    self._deliver(member, payload)
            elif (
                now - lagging.since > self.max_lag_seconds
                or len(lagging.batch) > self.max_lag_events
            ):
                del self._lagging[member]
                self.stats.overflows += 1
                member.overflow()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
