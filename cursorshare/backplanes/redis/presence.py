"""Remote presence: what this node knows of the members on other nodes, per room.

For each room this node has members in, a view holds the other nodes' members as this node
told its hub. Batches from other nodes update it (and pass through to the hub). Snapshots of
the room's hash start it when the hub opens the room. Sweeps report the members of dead nodes
as left; reconciles compare whole records with the hash and report what this node missed
(joins, leaves, and members whose state changed meanwhile). Reads of Redis are ordered against
messages by a change counter, so a message that overtakes a read is never undone by it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ...hub import JSON, Change, Event, Kind, PresenceChange, PresenceRecord, RemoteListener
from .keys import DELETE_IF_CONTAINS, Entry, KeyLayout, needle, script_args, text
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
    ) -> None:
        self.keys = keys
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
        return [PresenceRecord(member, remote.state) for member, remote in view.remote.items()]

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
        stale: dict[str, bytes | str] = {}
        own = self.liveness
        for member, (entry, raw) in entries.items():
            if entry.node == own.node_id:
                if entry.inst != own.instance or not self._is_local(room, member):
                    stale[member] = raw  # an earlier life of this node, or a lost HDEL
            elif not alive(tokens.get(entry.node), entry.inst):
                stale[member] = raw
            else:
                members[member] = _Remote(entry.node, entry.inst, entry.state, 0)
        if stale:
            await client.eval(DELETE_IF_CONTAINS, 1, key, *script_args(stale))
        return members

    async def sweep(self, client: Redis) -> None:
        """Report the members of dead nodes as left, and remove them from the rooms' hashes."""
        seq = self._seq
        nodes = {r.node for view in self._views.values() for r in view.remote.values()}
        tokens = await self.liveness.tokens(client, nodes)
        dead: dict[str, dict[str, bytes | str]] = {}
        for room, view in self._views.items():
            if view.joining is not None:
                continue
            gone: dict[str, bytes | str] = {
                member: needle(remote.inst)
                for member, remote in view.remote.items()
                if remote.seq <= seq and not alive(tokens.get(remote.node), remote.inst)
            }
            if not gone:
                continue
            dead[room] = gone
            for member in gone:
                del view.remote[member]
                self._seq += 1
                view.gone[member] = self._seq
            self.swept += len(gone)
            log.info("%d members of dead nodes left room %s", len(gone), room)
            self._report(room, [PresenceChange(Change.LEFT, member, {}) for member in gone])
        if dead:
            pipe = client.pipeline(transaction=False)
            for room, stale in dead.items():
                pipe.eval(DELETE_IF_CONTAINS, 1, self.keys.presence(room), *script_args(stale))
            await pipe.execute()

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
                # Still there; a state it reached while batches were lost is caught up.
                if known.seq <= seq and known.state != remote.state:
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
            changes.append(PresenceChange(Change.JOINED, member, remote.state))
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
