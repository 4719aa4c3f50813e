"""What this node must get into Redis, and the single writer that sends it.

``put`` never waits: a batch goes into a bounded queue (the oldest are dropped, and counted,
while Redis is away), and a changed member of this node is marked for (re)writing. Presence is
written from this node's own records, so nothing is lost by dropping batches but moves; after a
reconnection every record is written again. The marks are bounded too: past ``dirty_limit``
while Redis is away, departures are forgotten, and a scan after reconnecting (`purge`) removes
this node's entries of members who are not here any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ...hub import JSON
from .keys import (
    DELETE_IF_CONTAINS,
    REWRITE_OWN,
    STAMP_ORPHANS,
    Entry,
    KeyLayout,
    needle,
    script_args,
    stamp_args,
    text,
)

log = logging.getLogger("cursorshare.backplanes.redis")


class Outbox:
    def __init__(
        self,
        keys: KeyLayout,
        node_id: str,
        instance: str,
        *,
        presence_ttl: int,
        outbox_limit: int,
        batch_limit: int,
        dirty_limit: int,
    ) -> None:
        self.keys = keys
        self.node_id = node_id
        self.instance = instance
        self.presence_ttl = presence_ttl
        self.outbox_limit = outbox_limit
        self.batch_limit = batch_limit
        self.dirty_limit = dirty_limit
        #: Batches sent to Redis.
        self.published = 0
        #: Batches dropped: outbox full while Redis was away, or lost with the link.
        self.dropped = 0
        #: Departures were forgotten to bound the marks: `purge` must scan for them.
        self.needs_purge = False

        self._batches: deque[tuple[str, bytes]] = deque()
        #: This node's members: room -> member -> encoded entry.
        self._local: dict[str, dict[str, bytes]] = {}
        #: How long members stay after this process is gone: room -> member -> seconds.
        self._grace: dict[str, dict[str, float]] = {}
        #: When the grace of members whose connection is lost ends: room -> member -> loop time.
        self._grace_ends: dict[str, dict[str, float]] = {}
        #: Members whose entry must be (re)written, or removed: room -> members.
        self._dirty: dict[str, set[str]] = {}
        self._dirty_count = 0
        self._dirty_threshold = dirty_limit
        self._announce = False
        #: Told of a member another process took over while this one could not hear it.
        self.on_taken: Callable[[str, str], None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Batches waiting to be sent."""
        return len(self._batches)

    @property
    def pending_presence(self) -> int:
        """Members whose entry waits to be written or removed."""
        return self._dirty_count

    # -- this node's members ----------------------------------------------------------------

    def holds(self, room: str, member: str) -> bool:
        """Whether ``member`` is in ``room`` on this node."""
        return member in self._local.get(room, {})

    def outlive(self, room: str, member: str, seconds: float, *, started: bool = False) -> None:
        """Write ``member``'s entries with this grace (until it leaves); ``started``: its
        connection is lost, the grace runs from now, and entries carry what is left of it."""
        graces = self._grace.setdefault(room, {})
        ends = self._grace_ends.setdefault(room, {})
        ends.pop(member, None)
        if seconds > 0:
            graces[member] = seconds
            if started:
                ends[member] = asyncio.get_running_loop().time() + seconds
        else:
            graces.pop(member, None)
        if not graces:
            del self._grace[room]
        if not ends:
            del self._grace_ends[room]

    def _grace_left(self, room: str, member: str) -> float:
        grace = self._grace.get(room, {}).get(member, 0.0)
        end = self._grace_ends.get(room, {}).get(member)
        if end is None:
            return grace
        return max(0.0, min(grace, end - asyncio.get_running_loop().time()))

    def _forget_grace(self, room: str, member: str) -> None:
        self.outlive(room, member, 0.0)

    def put(
        self, room: str, batch: bytes | None, presence: dict[str, JSON | None], *, away: bool
    ) -> None:
        """Queue a batch for the room's channel and the changed members' entries."""
        if presence:
            local = self._local.setdefault(room, {})
            dirty = self._dirty.setdefault(room, set())
            for member, state in presence.items():
                if state is None:
                    local.pop(member, None)
                    self._forget_grace(room, member)
                else:
                    grace = self._grace_left(room, member)
                    local[member] = Entry(self.node_id, self.instance, state, grace).encode()
                if member not in dirty:
                    dirty.add(member)
                    self._dirty_count += 1
            if not local:
                del self._local[room]
            if away and self._dirty_count > self._dirty_threshold:
                self.forget_departures()
        if batch is not None:
            if len(self._batches) >= self.outbox_limit:
                self._batches.popleft()
                self.dropped += 1
            self._batches.append((room, batch))
        self._idle.clear()
        self._wake.set()

    def forget_departures(self) -> None:
        """Bound what waits while Redis is away: keep the present members (their entries are
        written anyway) and forget who left; `purge` removes those entries later."""
        for room, members in list(self._dirty.items()):
            members.intersection_update(self._local.get(room, {}))
            if not members:
                del self._dirty[room]
        self._dirty_count = sum(len(members) for members in self._dirty.values())
        self._dirty_threshold = max(self.dirty_limit, 2 * self._dirty_count)
        if not self.needs_purge:
            self.needs_purge = True
            log.warning("too many presence changes waiting for Redis: forgetting departures")

    def rewrite_all(self) -> None:
        """Write every entry again (Redis may have lost them, or others swept them), and then
        tell the other nodes to compare their rooms with Redis."""
        for room, members in self._local.items():
            dirty = self._dirty.setdefault(room, set())
            self._dirty_count += len(members.keys() - dirty)
            dirty.update(members)
        self._announce = True
        self._idle.clear()
        self._wake.set()

    # -- the writer -------------------------------------------------------------------------

    async def run(self, client: Redis) -> None:
        """The single writer: pipelines entries, then batches, until the link fails."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._batches or self._dirty:
                await self._send_some(client)
            if self._announce:
                pipe = client.pipeline(transaction=False)
                self._unstamp(pipe)
                message = orjson.dumps({"node": self.node_id, "inst": self.instance})
                pipe.publish(self.keys.nodes_channel, message)
                await pipe.execute()
                self._announce = False
            self._idle.set()

    async def _send_some(self, client: Redis) -> None:
        count = min(len(self._batches), self.batch_limit)
        batches = [self._batches.popleft() for _ in range(count)]
        dirty, self._dirty = self._dirty, {}
        self._dirty_count = 0
        pipe = client.pipeline(transaction=False)
        checks: list[tuple[str, int]] = []  # (room, index of its REWRITE_OWN's reply)
        for room, members in dirty.items():
            key = self.keys.presence(room)
            local = self._local.get(room, {})
            present = {member: local[member] for member in members if member in local}
            absent = [member for member in members if member not in local]
            # A member whose connection is lost may have resumed on another node, whose
            # hand-over this node may not have heard (its link was down): its entry is written
            # only if no other live process wrote it. A live member's entry is written as is
            # (it may just have resumed here from another node, whose entry it replaces).
            ends = self._grace_ends.get(room, {})
            dropped = [value for m, e in present.items() if m in ends for value in (m, e)]
            live = {member: entry for member, entry in present.items() if member not in ends}
            if dropped:
                checks.append((room, len(pipe)))
                pipe.eval(REWRITE_OWN, 1, key, self.keys.node_prefix, self.instance, *dropped)
            if live:
                pipe.hset(key, mapping=live)  # type: ignore[arg-type]
            if present:
                pipe.expire(key, self.presence_ttl)
            if absent:
                # Only this process's entries: a member that resumed on another node was
                # re-written by it, and must stay.
                mine = needle(self.instance)
                stale: dict[str, bytes | str] = {member: mine for member in absent}
                pipe.eval(DELETE_IF_CONTAINS, 1, key, *script_args(stale))
        for room, batch in batches:
            pipe.publish(self.keys.channel(room), batch)
        try:
            replies = await pipe.execute()
        except BaseException:
            for room, members in dirty.items():
                again = self._dirty.setdefault(room, set())
                self._dirty_count += len(members - again)
                again.update(members)
            self.dropped += len(batches)
            raise
        self.published += len(batches)
        for room, index in checks:
            for member in replies[index]:
                self._taken(room, text(member) or "")

    def _taken(self, room: str, member: str) -> None:
        """Another live process wrote ``member``'s entry: it is that process's now (this one
        no longer writes or removes it), and whoever holds it here lets it go."""
        local = self._local.get(room, {})
        if local.pop(member, None) is None:
            return
        if not local:
            del self._local[room]
        self._forget_grace(room, member)
        if self.on_taken is not None:
            self.on_taken(room, member)

    async def farewell(self, client: Redis) -> None:
        """On a clean stop: send what is pending, then remove this node's entries, but those
        of members with a grace: they stay, stamped to leave when it ends (they may resume on
        another node, or on this one restarted, meanwhile)."""
        self._wake.set()
        await self._idle.wait()
        pipe = client.pipeline(transaction=False)
        for room, members in self._local.items():
            left = {member: self._grace_left(room, member) for member in members}
            gone = [member for member, grace in left.items() if grace <= 0]
            if gone:
                pipe.hdel(self.keys.presence(room), *gone)
            orphans = [
                (member, self.instance, grace) for member, grace in left.items() if grace > 0
            ]
            if orphans:
                keys = (self.keys.orphans(room), self.keys.presence(room))
                pipe.eval(STAMP_ORPHANS, 2, *keys, *stamp_args(self.presence_ttl, orphans))
        await pipe.execute()
        self._local.clear()
        self._grace.clear()
        self._grace_ends.clear()
        self._dirty.clear()
        self._dirty_count = 0

    # -- upkeep -------------------------------------------------------------------------------

    async def refresh(self, client: Redis) -> None:
        """Keep the hashes of this node's rooms from expiring, and the entries of members whose
        connection is lost current with what is left of their grace (should this node die,
        the others keep them that long)."""
        self.rewrite_dropped()
        pipe = client.pipeline(transaction=False)
        for room in self._local:
            pipe.expire(self.keys.presence(room), self.presence_ttl)
            pipe.expire(self.keys.slots(room), self.presence_ttl)
            pipe.expire(self.keys.orphans(room), self.presence_ttl)
        self._unstamp(pipe)  # (a sweep that read this node dead may have stamped after it)
        await pipe.execute()

    def rewrite_dropped(self) -> None:
        """Write the entries of members whose connection is lost again, with what is left of
        their grace, and only where no other live process wrote them (`REWRITE_OWN`: one that
        resumed elsewhere unheard is let go)."""
        for room, ends in self._grace_ends.items():
            local = self._local.get(room, {})
            for member in ends.keys() & local.keys():
                entry = Entry.decode(local[member])
                if entry is None:
                    continue
                grace = self._grace_left(room, member)
                local[member] = Entry(self.node_id, self.instance, entry.state, grace).encode()
                dirty = self._dirty.setdefault(room, set())
                if member not in dirty:
                    dirty.add(member)
                    self._dirty_count += 1
        if self._dirty:
            self._idle.clear()
            self._wake.set()

    def _unstamp(self, pipe: Pipeline) -> None:
        """Remove the stamps of when this node's members leave: they are here, so any stamp is
        stale (others took this node for dead while it stalled, or the member resumed here
        from a gone process). Left in place, `STAMP_ORPHANS` would reuse a stamp of this
        instance at this node's stop or death, and its members would leave at once, not at
        the end of their grace."""
        for room, members in self._local.items():
            pipe.hdel(self.keys.orphans(room), *members)

    async def purge(self, client: Redis) -> None:
        """Remove this node's entries of members not here any more, in every room."""
        removed = 0
        async for key in client.scan_iter(match=self.keys.presence_pattern, count=1000):
            room = self.keys.room_of_presence(key)
            stale: dict[str, bytes | str] = {}
            for field, raw in (await client.hgetall(key)).items():
                entry = Entry.decode(raw)
                member = text(field)
                if entry is None or member is None or entry.node != self.node_id:
                    continue
                if entry.inst != self.instance or not self.holds(room, member):
                    stale[member] = raw
            if stale:
                removed += int(await client.eval(DELETE_IF_CONTAINS, 1, key, *script_args(stale)))
        self.needs_purge = False
        log.info("removed %d presence entries of members who left while Redis was away", removed)
