"""Remote presence: what this node knows of the members on other nodes, per room.

For each room this node has members in, a view holds the other nodes' members as this node
told its hub. Batches from other nodes update it (and pass through to the hub). Snapshots of
the room's hash start it when the hub opens the room. Sweeps report the members of dead nodes
as left, or, those whose entry has a grace, as orphaned until it ends (`STAMP_ORPHANS`: every
node agrees when), then as left; reconciles compare whole records with the hash and report
what this node missed (joins, leaves, and members whose state changed meanwhile). Reads of
Redis are ordered against messages by a change counter, so a message that overtakes a read is
never undone by it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ...hub import JSON, Change, Event, Kind, PresenceChange, PresenceRecord, RemoteListener
from .keys import (
    DELETE_IF_CONTAINS,
    STAMP_ORPHANS,
    Entry,
    KeyLayout,
    delete_if_dead,
    script_args,
    stamp_args,
    text,
)
from .liveness import NodeLiveness, alive

log = logging.getLogger("cursorshare.backplanes.redis")


@dataclass(slots=True)
class _Remote:
    """A member on another node, as this node told its hub."""

    node: str
    inst: str
    state: JSON
    #: Value of the change counter when this member last changed.
    seq: int
    #: Once its process is gone: when it leaves (ms of Redis time); None while it lives.
    until: int | None = None


@dataclass(slots=True, eq=False)
class _View:
    """What this node knows of a room it has members in."""

    #: open() calls minus close() calls (a close may run after the next open started).
    refs: int = 0
    remote: dict[str, _Remote] = field(default_factory=dict)
    #: Members that left since the last reconcile: member -> change counter at the leave.
    gone: dict[str, int] = field(default_factory=dict)
    #: While a snapshot is read for the hub: the room's batches that arrived meanwhile.
    joining: list[tuple[str, str, list[Event]]] | None = None


class RemotePresence:
    def __init__(
        self,
        keys: KeyLayout,
        liveness: NodeLiveness,
        is_local: Callable[[str, str], bool],
        *,
        hash_ttl: int = 120,
    ) -> None:
        self.keys = keys
        #: The least TTL of a room's hashes while orphans are in them.
        self.hash_ttl = hash_ttl
        self.liveness = liveness
        #: Whether (room, member) is this node's own member.
        self._is_local = is_local
        self.listener: RemoteListener | None = None
        #: Batches received from other nodes.
        self.received = 0
        #: Members of dead nodes reported as left.
        self.swept = 0
        #: Joins and leaves found by comparing a room's hash with what the hub was told.
        self.reconciled = 0
        self._views: dict[str, _View] = {}
        #: Counts every change to a view; orders them against Redis reads.
        self._seq = 0

    def rooms(self) -> list[str]:
        return list(self._views)

    def records(self, room: str) -> list[PresenceRecord]:
        """The members of other nodes in ``room``, as this node told its hub."""
        view = self._views.get(room)
        if view is None:
            return []
        return [
            PresenceRecord(member, remote.state, orphaned=remote.until is not None)
            for member, remote in view.remote.items()
        ]

    # -- rooms --------------------------------------------------------------------------------

    async def open(
        self, room: str, subscribe: Callable[[], Awaitable[Redis | None]]
    ) -> list[PresenceRecord]:
        """Track ``room`` for a hub that knows nobody in it yet. ``subscribe`` makes its
        messages reach this node and returns the client to read the snapshot with (None: the
        link is down; a reconcile once it is back reports the others)."""
        view = self._views.get(room)
        if view is None:
            view = self._views[room] = _View()
        view.refs += 1
        view.remote.clear()
        view.gone.clear()
        buffer: list[tuple[str, str, list[Event]]] = []
        view.joining = buffer
        try:
            client = await subscribe()
            if client is None:
                return []
            members = await self.snapshot(client, room)
        finally:
            if view.joining is buffer:
                view.joining = None
        # Batches that arrived while the snapshot was read are newer than the subscription:
        # replay them on the snapshot (it may already reflect some; the last change wins).
        for node, inst, events in buffer:
            for event in events:
                if event.kind is Kind.LEAVE:
                    members.pop(event.sender, None)
                else:
                    members[event.sender] = _Remote(node, inst, event.state, 0)
        for remote in members.values():
            self._seq += 1
            remote.seq = self._seq
        view.remote = members
        return self.records(room)

    def close(self, room: str) -> bool:
        """The hub closed ``room``; True when nothing tracks it any more."""
        view = self._views.get(room)
        if view is None:
            return False
        view.refs -= 1
        if view.refs > 0:
            return False  # the hub opened the room again meanwhile
        del self._views[room]
        return True

    # -- batches from other nodes -------------------------------------------------------------

    def tracks(self, room: str) -> bool:
        return room in self._views

    def receive(self, room: str, node: str, inst: str, events: list[Event]) -> None:
        """Another node's batch: record it in the room's view, and pass it to the hub."""
        view = self._views.get(room)
        if view is None:
            return
        self.received += 1
        if view.joining is not None:
            view.joining.append((node, inst, events))
            return
        deliver = []
        for event in events:
            self._seq += 1
            member = event.sender
            known = view.remote.get(member)
            if event.kind is Kind.LEAVE:
                if known is None:
                    continue  # already reported as left (sweep or reconcile)
                if (known.node, known.inst) != (node, inst):
                    continue  # the stale departure of a member another node holds now
                del view.remote[member]
                view.gone[member] = self._seq
            elif known is None or event.kind is Kind.JOIN:
                view.remote[member] = _Remote(node, inst, event.state, self._seq)
                view.gone.pop(member, None)
                if known is not None and (known.node, known.inst) == (node, inst):
                    continue  # a reconcile reported this join already
                # else new here, or it moved from another node (it resumed there)
            else:
                known.state = event.state
                known.seq = self._seq
            deliver.append(event)
        if deliver and self.listener is not None:
            self.listener.remote_events(room, deliver)

    def _report(self, room: str, changes: list[PresenceChange]) -> None:
        if changes and self.listener is not None:
            self.listener.remote_presence(room, changes)

    # -- reads of Redis -----------------------------------------------------------------------

    async def snapshot(self, client: Redis, room: str) -> dict[str, _Remote]:
        """The room's members on live nodes other than this one; removes stale entries."""
        key = self.keys.presence(room)
        entries: dict[str, tuple[Entry, bytes | str]] = {}
        for field_name, raw in (await client.hgetall(key)).items():
            entry, member = Entry.decode(raw), text(field_name)
            if entry is not None and member is not None:
                entries[member] = (entry, raw)
        tokens = await self.liveness.tokens(client, {entry.node for entry, _ in entries.values()})
        members: dict[str, _Remote] = {}
        lost: dict[str, bytes | str] = {}  # this process's entries of members not here
        dead: dict[str, tuple[str, str]] = {}  # entries of gone processes: member -> writer
        fallen: dict[str, Entry] = {}
        own = self.liveness
        for member, (entry, raw) in entries.items():
            if (entry.node, entry.inst) == (own.node_id, own.instance):
                if not self._is_local(room, member):
                    lost[member] = raw  # a lost HDEL
            elif entry.node != own.node_id and alive(tokens.get(entry.node), entry.inst):
                members[member] = _Remote(entry.node, entry.inst, entry.state, 0)
            elif entry.grace > 0:
                fallen[member] = entry  # its process is gone: it stays for its grace
            else:
                dead[member] = (entry.node, entry.inst)  # or of an earlier life of this one
        if fallen:
            now, deadlines = await self._stamp(client, room, fallen)
            for member, entry in fallen.items():
                if deadlines[member] > now:
                    remote = _Remote(entry.node, entry.inst, entry.state, 0, deadlines[member])
                    members[member] = remote
                else:
                    dead[member] = (entry.node, entry.inst)
        if lost or dead:
            pipe = client.pipeline(transaction=False)
            if lost:
                pipe.eval(DELETE_IF_CONTAINS, 1, key, *script_args(lost))
            if dead:
                delete_if_dead(pipe, self.keys, room, dead)
            pipe.hdel(self.keys.orphans(room), *lost, *dead)
            await pipe.execute()
        return members

    async def _stamp(
        self, client: Redis, room: str, fallen: dict[str, Entry]
    ) -> tuple[int, dict[str, int]]:
        """Redis's time, and when each of ``fallen`` (members of gone processes) leaves."""
        orphans = [(member, entry.inst, entry.grace) for member, entry in fallen.items()]
        keys = (self.keys.orphans(room), self.keys.presence(room))
        reply = await client.eval(STAMP_ORPHANS, 2, *keys, *stamp_args(self.hash_ttl, orphans))
        now, *deadlines = (int(value) for value in reply)
        return now, dict(zip(fallen, deadlines, strict=True))

    async def sweep(self, client: Redis) -> None:
        """Report the members of dead nodes as orphaned (those with a grace: until it ends) or
        left, and remove the entries of those who left from the rooms' hashes."""
        seq = self._seq
        nodes = {r.node for view in self._views.values() for r in view.remote.values()}
        tokens = await self.liveness.tokens(client, nodes)
        # Members of gone processes this node knew as live, and orphans whose grace may be over.
        fallen: dict[str, dict[str, _Remote]] = {}
        orphans: dict[str, dict[str, _Remote]] = {}
        for room, view in self._views.items():
            if view.joining is not None:
                continue
            for member in [m for m in view.remote if self._is_local(room, m)]:
                del view.remote[member]  # it resumed on this node: this node speaks for it
            for member, remote in view.remote.items():
                if remote.seq > seq:
                    continue
                if remote.until is not None:
                    orphans.setdefault(room, {})[member] = remote
                elif not alive(tokens.get(remote.node), remote.inst):
                    fallen.setdefault(room, {})[member] = remote
        if not (fallen or orphans):
            return
        deadlines, now = await self._deadlines(client, fallen)
        gone: dict[str, dict[str, tuple[str, str]]] = {}
        for room, members in (*orphans.items(), *fallen.items()):
            current = self._views.get(room)
            if current is None or current.joining is not None:
                continue
            changes: list[PresenceChange] = []
            for member, remote in members.items():
                if current.remote.get(member) is not remote or remote.seq > seq:
                    continue  # it changed while Redis was read
                until = remote.until
                if until is None:
                    until = deadlines[room].get(member, 0)
                    if until is None:
                        continue  # its entry is another process's now: its batch tells
                if until > now:
                    if remote.until is None:
                        remote.until = until
                        changes.append(PresenceChange(Change.ORPHANED, member, remote.state))
                    continue
                del current.remote[member]
                self._seq += 1
                current.gone[member] = self._seq
                gone.setdefault(room, {})[member] = (remote.node, remote.inst)
                changes.append(PresenceChange(Change.LEFT, member, {}))
            if changes:
                self.swept += len(changes)
                log.info(
                    "room %s: %d members of dead nodes left or wait to resume", room, len(changes)
                )
                self._report(room, changes)
        if gone:
            pipe = client.pipeline(transaction=False)
            for room, writers in gone.items():
                delete_if_dead(pipe, self.keys, room, writers)
                pipe.hdel(self.keys.orphans(room), *writers)
            await pipe.execute()

    async def _deadlines(
        self, client: Redis, fallen: dict[str, dict[str, _Remote]]
    ) -> tuple[dict[str, dict[str, int | None]], int]:
        """When each member of ``fallen`` leaves, from its entry: 0 (now) when it has no grace
        or no entry, None when another process re-wrote its entry (it resumed there: that
        node's batch tells); and Redis's time now (ms)."""
        rooms = list(fallen)
        pipe = client.pipeline(transaction=False)
        pipe.time()
        for room in rooms:
            pipe.hmget(self.keys.presence(room), list(fallen[room]))
        clock, *replies = await pipe.execute()
        now = int(clock[0]) * 1000 + int(clock[1]) // 1000
        deadlines: dict[str, dict[str, int | None]] = {}
        for room, values in zip(rooms, replies, strict=True):
            found: dict[str, int | None] = {}
            graced: dict[str, Entry] = {}
            for (member, remote), raw in zip(fallen[room].items(), values, strict=True):
                entry = None if raw is None else Entry.decode(raw)
                if entry is not None and entry.inst != remote.inst:
                    found[member] = None
                elif entry is not None and entry.grace > 0:
                    graced[member] = entry
                else:
                    found[member] = 0
            if graced:
                _, stamped = await self._stamp(client, room, graced)
                found.update(stamped)
            deadlines[room] = found
        return deadlines, now

    async def reconcile(self, client: Redis, room: str) -> None:
        """Compare the room's hash with what the hub was told; report the difference."""
        view = self._views.get(room)
        if view is None or view.joining is not None:
            return
        seq = self._seq
        present = await self.snapshot(client, room)
        if self._views.get(room) is not view or view.joining is not None:
            return
        changes: list[PresenceChange] = []
        joins = leaves = updates = 0
        for member, remote in present.items():
            known = view.remote.get(member)
            if known is not None:
                if known.seq > seq:
                    continue  # a batch told of it while the hash was read
                if remote.until is not None:
                    if known.until is None:  # its process is gone: it waits for a resume
                        known.node, known.inst, known.until = remote.node, remote.inst, remote.until
                        changes.append(PresenceChange(Change.ORPHANED, member, remote.state))
                        updates += 1
                    continue
                # Still there; a state it reached while batches were lost is caught up (or,
                # an orphan that resumed on another node, its live state).
                if known.state != remote.state or known.until is not None:
                    known.node, known.inst, known.until = remote.node, remote.inst, None
                    known.state = remote.state
                    changes.append(PresenceChange(Change.UPDATED, member, remote.state))
                    updates += 1
                continue
            left = view.gone.get(member)
            if left is not None and left > seq:
                continue  # it left while the hash was being read
            self._seq += 1
            remote.seq = self._seq
            view.remote[member] = remote
            kind = Change.JOINED if remote.until is None else Change.ORPHANED
            changes.append(PresenceChange(kind, member, remote.state))
            joins += 1
        for member, remote in list(view.remote.items()):
            if member not in present and remote.seq <= seq:
                del view.remote[member]
                changes.append(PresenceChange(Change.LEFT, member, {}))
                leaves += 1
        view.gone.clear()
        if changes:
            self.reconciled += joins + leaves
            log.info(
                "room %s, compared with Redis: %d joins, %d leaves, %d states caught up",
                room,
                joins,
                leaves,
                updates,
            )
            self._report(room, changes)
