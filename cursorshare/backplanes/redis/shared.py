"""What the nodes share in Redis besides rooms: records with a time to live (the `TtlStore`
an app keeps identities in) and slots claimed per room (`CLAIM_SLOT`).

Both go through the link's current client; while the link is down they are unavailable (the
store raises `StoreUnavailable`, a claim returns None), and the node carries on alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ...hub import JSON, StoreUnavailable
from .keys import CLAIM_SLOT, KeyLayout, text
from .link import LINK_ERRORS, Link
from .records import (
    DISCARD_RECORD,
    END_RECORD,
    RENEW_HELD,
    RESTORE_RECORDS,
    SEIZE_RECORD,
    TAKE_RECORD,
    WRITE_RECORD,
)

log = logging.getLogger("cursorshare.backplanes.redis")

#: Held records written again per script call.
RENEW_CHUNK = 500


class RedisTtlStore:
    """A `TtlStore` in Redis. A record is a hash (``record``, ``scope``, and ``node`` and
    ``inst`` while a process holds it); `TAKE_RECORD` takes it atomically unless its holder's
    node key still holds that instance.

    Held records are also kept here, written again after every (re)connection and their TTL
    renewed every ``keepalive / 2`` seconds (`keep_held`): each outlives this process by its
    ttl, plus at most ``keepalive``. A take of a record another node holds while that node's
    key still says it lives waits, at most ``verdict_wait`` seconds (the node key's TTL), until
    the key is renewed (its holder lives: nothing is taken) or is gone (it died: taken).
    """

    def __init__(
        self,
        link: Link,
        keys: KeyLayout,
        *,
        node_id: str,
        instance: str,
        verdict_wait: float = 3.0,
        keepalive: float = 30.0,
        poll: float = 0.1,
    ) -> None:
        self.link = link
        self.keys = keys
        self.node_id = node_id
        self.instance = instance
        self.verdict_wait = verdict_wait
        self.keepalive = keepalive
        self.poll = poll
        #: Records this process holds: key -> (record, ttl in seconds, scope).
        self._held: dict[str, tuple[bytes, float, str]] = {}
        #: Records this process put and nobody took through it, oldest first: written again
        #: where a restarted Redis lost them, and once the link is back where the put failed.
        self._put: OrderedDict[str, _Put] = OrderedDict()
        #: The run id of the Redis server of the last connection (a new one: it restarted).
        self._redis_run: str | None = None

    def _client(self) -> Redis:
        client = self.link.client
        if client is None:
            raise StoreUnavailable("the link to Redis is down")
        return client

    def _ms(self, ttl: float) -> int:
        return max(1, int(ttl * 1000))

    async def put(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        """Raises `StoreUnavailable` when the link is down; the record is then written once
        it is back (unless taken, discarded or ended here meanwhile)."""
        self._held.pop(key, None)
        self._put.pop(key, None)
        raw = orjson.dumps(record)
        now = asyncio.get_running_loop().time()
        put = self._put[key] = _Put(raw, scope, now + ttl)
        while self._put and next(iter(self._put.values())).until <= now:
            self._put.popitem(last=False)  # (an app puts with one TTL: oldest expire first)
        client = self._client()
        name = self.keys.kept(key)
        fields = ("record", raw, "scope", scope)
        try:
            await client.eval(WRITE_RECORD, 1, name, self._ms(ttl), *fields)
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        put.written = True

    async def hold(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        self._put.pop(key, None)
        raw = orjson.dumps(record)
        self._held[key] = (raw, ttl, scope)
        client = self.link.client
        if client is None:
            return  # written by keep_held once the link is back
        pipe = client.pipeline(transaction=True)
        self._write_held(pipe, key, raw, ttl, scope)
        try:
            await pipe.execute()
        except LINK_ERRORS as exc:
            log.debug("holding a record failed (written again once the link is back): %s", exc)

    def _write_held(self, pipe: Pipeline, key: str, raw: bytes, ttl: float, scope: str) -> None:
        fields = ("record", raw, "node", self.node_id, "inst", self.instance, "scope", scope)
        ms = self._ms(ttl + self.keepalive)
        pipe.eval(WRITE_RECORD, 1, self.keys.kept(key), ms, *fields)

    async def discard(self, key: str) -> None:
        self._held.pop(key, None)
        self._put.pop(key, None)
        client = self._client()
        try:
            await client.eval(DISCARD_RECORD, 1, self.keys.kept(key), self.node_id, self.instance)
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def end(self, key: str) -> JSON | None:
        self._held.pop(key, None)
        self._put.pop(key, None)
        try:
            raw = await self._client().eval(END_RECORD, 1, self.keys.kept(key))
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        return None if raw is None else _record(raw)

    async def seize(self, key: str, scope: str = "") -> JSON | None:
        client = self._client()
        try:
            raw = await client.eval(
                SEIZE_RECORD, 1, self.keys.kept(key), self.node_id, self.instance, scope
            )
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if raw is None:
            return None
        self._put.pop(key, None)  # held by this process now
        return _record(raw)

    async def take(self, key: str, scope: str = "") -> JSON | None:
        found = await self._take(key, scope)
        if found is not None:
            self._put.pop(key, None)
        return found

    async def _take(self, key: str, scope: str) -> JSON | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.verdict_wait
        last_left: int | None = None
        while True:
            client = self._client()
            try:
                reply = await client.eval(
                    TAKE_RECORD, 1, self.keys.kept(key), self.keys.node_prefix, scope
                )
            except LINK_ERRORS as exc:
                raise StoreUnavailable(str(exc)) from exc
            if reply is None:
                return None
            if text(reply[0]) == "record":
                return _record(reply[1])
            node, left = text(reply[1]), int(reply[2])
            if node == self.node_id or loop.time() >= deadline:
                return None  # this process holds it, or its holder renewed its key meanwhile
            if last_left is not None and left > last_left:
                return None  # its holder's key was renewed: it lives
            last_left = left
            await asyncio.sleep(self.poll)

    async def keep_held(self, client: Redis) -> None:
        """While the link is up: write every held record again (Redis may have lost them), and
        so renew their TTLs, every ``keepalive / 2`` seconds; after a Redis restart, the
        records put and not taken since too."""
        await self._restore_after_a_restart(client)
        while True:
            held = list(self._held.items())
            for start in range(0, len(held), RENEW_CHUNK):
                chunk = held[start : start + RENEW_CHUNK]
                names = [self.keys.kept(key) for key, _ in chunk]
                args = [
                    value
                    for _, (raw, ttl, scope) in chunk
                    for value in (raw, self._ms(ttl + self.keepalive), scope)
                ]
                await client.eval(
                    RENEW_HELD, len(names), *names, self.node_id, self.instance, *args
                )
            await asyncio.sleep(self.keepalive / 2)

    async def _restore_after_a_restart(self, client: Redis) -> None:
        """Write again the records put here that Redis lost (it restarted: a new run id), or
        that were never written (the link was down)."""
        run = str((await client.info("server")).get("run_id"))
        restarted = self._redis_run not in (None, run)
        self._redis_run = run
        now = asyncio.get_running_loop().time()
        due = [
            (key, put)
            for key, put in self._put.items()
            if put.until > now and (restarted or not put.written)
        ]
        for start in range(0, len(due), RENEW_CHUNK):
            chunk = due[start : start + RENEW_CHUNK]
            names = [self.keys.kept(key) for key, _ in chunk]
            args: list[bytes | str | int] = [self.node_id, self.instance]
            for _, put in chunk:
                args += [put.raw, put.scope, self._ms(put.until - now)]
            await client.eval(RESTORE_RECORDS, len(names), *names, *args)
            for _, put in chunk:
                put.written = True
        if due:
            log.info("%d resume records written again (Redis restarted, or was away)", len(due))


@dataclass(slots=True)
class _Put:
    """A record put by this process: its JSON, scope, the loop time it expires, and whether
    Redis has it."""

    raw: bytes
    scope: str
    until: float
    written: bool = False


def _record(raw: object) -> JSON | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class SlotClaims:
    """Claims slots with `CLAIM_SLOT`; a claim counts for ``hold`` seconds before its member's
    presence entry must be there, and the room's claims expire with its presence hash.

    The claims of this node's members are also kept here until they leave (`forget`), and
    written again after each reconnection where Redis lost them (`restore`: a restarted Redis
    would otherwise give newcomers the slots, the colours, of people present)."""

    def __init__(self, link: Link, keys: KeyLayout, *, hold: float, ttl: int) -> None:
        self.link = link
        self.keys = keys
        self.hold = hold
        self.ttl = ttl
        #: room -> member -> slot, of this node's members.
        self._claimed: dict[str, dict[str, int]] = {}

    def forget(self, room: str, member: str) -> None:
        """``member`` left ``room`` on this node."""
        claims = self._claimed.get(room)
        if claims is not None and claims.pop(member, None) is not None and not claims:
            del self._claimed[room]

    async def restore(self, client: Redis) -> None:
        """Write each claim of this node's members again where its member has none (claimed
        now: it counts for the hold while the member's entry is written again too)."""
        if not self._claimed:
            return
        seconds, micros = await client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        pipe = client.pipeline(transaction=False)
        for room, claims in self._claimed.items():
            key = self.keys.slots(room)
            for member, slot in claims.items():
                pipe.hsetnx(key, member, f"{slot}:{now}")
            pipe.expire(key, self.ttl)
        await pipe.execute()

    async def claim(self, room: str, member: str, slots: int, keep: int | None) -> int | None:
        client = self.link.client
        if client is None:
            self._keep_for_later(room, member, keep)
            return None
        try:
            slot = await client.eval(
                CLAIM_SLOT,
                2,
                self.keys.slots(room),
                self.keys.presence(room),
                member,
                slots,
                "" if keep is None else keep,
                int(self.hold * 1000),
                self.ttl,
            )
        except LINK_ERRORS as exc:
            log.warning("could not claim a slot in room %s: %s", room, exc)
            self._keep_for_later(room, member, keep)
            return None
        self._claimed.setdefault(room, {})[member] = int(slot)
        return int(slot)

    def _keep_for_later(self, room: str, member: str, keep: int | None) -> None:
        """The link is down: the caller chose a slot itself and claims it as ``keep``; it is
        written once the link is back (`restore`)."""
        if keep is not None:
            self._claimed.setdefault(room, {})[member] = keep
