"""The Redis backplane: rooms shared between nodes through Redis pub/sub, presence in hashes.

It is a few parts, each owning its state (see their modules):

- `keys.KeyLayout`: what is stored where (channels, hashes, node keys) and in what form;
- `link.Link`: the connection, its subscriptions, reconnecting with backoff;
- `liveness.NodeLiveness`: this node's liveness key, and which other nodes are alive;
- `outbox.Outbox`: this node's batches and presence entries, and the single writer;
- `presence.RemotePresence`: the members of other nodes: views, snapshots, sweeps, reconciles;
- `shared.RedisTtlStore`, `shared.SlotClaims`: records with a TTL, and slots claimed per room.

This class wires them and paces the upkeep: every ``sweep_interval`` seconds a sweep (or, every
``reconcile_interval`` seconds, and ``node_ttl`` seconds after each (re)connection, and when
another node says it is back, a reconcile of every room). So after an outage every node
converges. While Redis is away the node keeps serving its own users: `state` is ``down``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from ...hub import (
    JSON,
    Backplane,
    BackplaneState,
    Event,
    PresenceRecord,
    RemoteListener,
    TtlStore,
)
from .keys import (
    FAREWELL,
    HANDOVER,
    Batch,
    KeyLayout,
    farewell,
    handover,
    request_of,
)
from .link import LINK_ERRORS, Link
from .liveness import NodeLiveness
from .outbox import Outbox
from .presence import RemotePresence
from .shared import RedisTtlStore, SlotClaims

log = logging.getLogger("cursorshare.backplanes.redis")


@dataclass(slots=True)
class BackplaneStats:
    published: int = 0
    """Batches sent to Redis."""
    received: int = 0
    """Batches received from other nodes."""
    dropped: int = 0
    """Batches dropped: outbox full while Redis was away, or lost with the link."""
    outages: int = 0
    swept: int = 0
    """Members of dead nodes reported as left."""
    reconciled: int = 0
    """Joins and leaves found by comparing a room's presence hash with what the hub knows."""


class RedisBackplane(Backplane):
    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        prefix: str = "cursorshare",
        node_ttl: float = 3.0,
        heartbeat: float = 1.0,
        sweep_interval: float = 1.0,
        reconcile_interval: float = 10.0,
        presence_ttl: int = 120,
        backoff_min: float = 0.1,
        backoff_max: float = 1.0,
        outbox_limit: int = 1024,
        batch_limit: int = 256,
        dirty_limit: int = 100_000,
        timeout: float = 2.0,
        slot_hold: float = 10.0,
    ) -> None:
        self.node_id = node_id
        self.node_ttl = node_ttl
        self.sweep_interval = sweep_interval
        self.reconcile_interval = reconcile_interval
        #: Distinguishes this process from an earlier one that used the same node id.
        self.instance = secrets.token_hex(8)
        self.keys = KeyLayout(prefix)
        self.liveness = NodeLiveness(
            self.keys, node_id, self.instance, ttl=node_ttl, heartbeat=heartbeat
        )
        self.outbox = Outbox(
            self.keys,
            node_id,
            self.instance,
            presence_ttl=presence_ttl,
            outbox_limit=outbox_limit,
            batch_limit=batch_limit,
            dirty_limit=dirty_limit,
        )
        self.outbox.on_taken = self._on_taken
        self.remote = RemotePresence(
            self.keys, self.liveness, self.outbox.holds, hash_ttl=presence_ttl
        )
        self.link = Link(
            url,
            [self.keys.nodes_channel],
            timeout=timeout,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            on_message=self._on_message,
            on_connect=self.liveness.claim,
            on_up=self._on_up,
        )
        self.store = RedisTtlStore(
            self.link, self.keys, node_id=node_id, instance=self.instance, verdict_wait=node_ttl
        )
        self.slots = SlotClaims(self.link, self.keys, hold=slot_hold, ttl=presence_ttl)
        self._quiet_until = 0.0
        self._next_reconcile = 0.0
        self._foreign_warned = False

    # -- Backplane ----------------------------------------------------------------------------

    @property
    def state(self) -> BackplaneState:
        return self.link.state

    @property
    def stats(self) -> BackplaneStats:
        return BackplaneStats(
            published=self.outbox.published,
            received=self.remote.received,
            dropped=self.outbox.dropped,
            outages=self.link.outages,
            swept=self.remote.swept,
            reconciled=self.remote.reconciled,
        )

    def counters(self) -> dict[str, int]:
        return asdict(self.stats)

    @property
    def quiet_until(self) -> float:
        """Loop time until which this node neither sweeps nor reconciles: after (re)connecting
        it gives the other nodes ``node_ttl`` seconds to come back too."""
        return self._quiet_until

    async def start(self, listener: RemoteListener) -> None:
        self.remote.listener = listener
        await self.link.start()

    async def stop(self, *, farewell: bool = True) -> None:
        """Stop for good. With ``farewell`` (a clean stop) this node's presence is removed at
        once; without it, it stays until the other nodes find this node dead, as after a
        crash."""
        await self.link.stop(self._farewell if farewell else None)

    async def _farewell(self, client: Redis) -> None:
        await self.outbox.farewell(client)
        pipe = client.pipeline(transaction=False)
        self.liveness.release(pipe)
        await pipe.execute()

    async def join_room(self, room: str) -> list[PresenceRecord]:
        channel = self.keys.channel(room)

        async def subscribe() -> Redis | None:
            return self.link.client if await self.link.subscribe(channel) else None

        try:
            return await self.remote.open(room, subscribe)
        except LINK_ERRORS as exc:
            self.link.failed(exc)
            return []

    async def leave_room(self, room: str) -> None:
        if not self.remote.close(room):
            return
        try:
            await self.link.unsubscribe(self.keys.channel(room))
        except LINK_ERRORS as exc:
            self.link.failed(exc)

    async def claim_slot(
        self, room: str, member: str, slots: int, keep: int | None = None
    ) -> int | None:
        return await self.slots.claim(room, member, slots, keep)

    def outlive(self, room: str, member: str, seconds: float, *, started: bool = False) -> None:
        self.outbox.outlive(room, member, seconds, started=started)

    async def farewell(self, room: str, member: str) -> None:
        await self._ask(room, member, farewell(member), "farewell")

    async def hand_over(self, room: str, member: str) -> None:
        await self._ask(room, member, handover(member, self.node_id, self.instance), "hand-over")

    async def _ask(self, room: str, member: str, message: bytes, what: str) -> None:
        """Publish a request about ``member`` on the room's channel, where its holder hears it."""
        client = self.link.client
        if client is None:
            log.warning("Redis is away: the %s of %s in %s is lost", what, member, room)
            return
        try:
            await client.publish(self.keys.channel(room), message)
        except LINK_ERRORS as exc:
            log.warning("the %s of %s in %s is lost: %s", what, member, room, exc)

    def shared_store(self) -> TtlStore:
        return self.store

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        if self.link.stopped or not (events or presence):
            return
        batch = Batch(self.node_id, self.instance, events).encode() if events else None
        away = self.link.state is not BackplaneState.UP
        self.outbox.put(room, batch, presence, away=away)
        for member, state in presence.items():
            if state is None:
                self.slots.forget(room, member)

    # -- the link's callbacks -------------------------------------------------------------------

    def _on_up(self, client: Redis, outage: float | None) -> list[Coroutine[Any, Any, None]]:
        now = asyncio.get_running_loop().time()
        self._quiet_until = self._next_reconcile = now + self.node_ttl
        self.outbox.rewrite_all()
        if outage is None:
            log.info("Redis backplane up: %s as node %s", self.link.url, self.node_id)
        else:
            log.warning(
                "Redis backplane up again after %.1f s (%d batches dropped so far)",
                outage,
                self.outbox.dropped,
            )
        return [
            self.outbox.run(client),
            self.liveness.beat(client, self.outbox.rewrite_all),
            self.store.keep_held(client),
            self._upkeep(client),
        ]

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if channel == self.keys.nodes_channel.encode():
            self._on_node_back(data)
            return
        room = self.keys.room_of(channel)
        if room is None or not self.remote.tracks(room):
            return
        if data.startswith(FAREWELL) or data.startswith(HANDOVER):
            self._on_request(room, data)
            return
        try:
            batch = Batch.decode(data)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropped a malformed backplane message on %s: %s", room, exc)
            return
        if batch.node == self.node_id:
            if batch.inst != self.instance and not self._foreign_warned:
                self._foreign_warned = True
                log.warning("another process publishes as node %s: ids must differ", batch.node)
            return
        self.remote.receive(room, batch.node, batch.inst, batch.events)

    def _on_request(self, room: str, data: bytes) -> None:
        """A farewell or a hand-over of a member, for the node that holds it."""
        handing_over = data.startswith(HANDOVER)
        request = request_of(data, "handover" if handing_over else "farewell")
        listener = self.remote.listener
        if request is None or listener is None:
            return
        member, sender = request
        if not handing_over:
            listener.remote_farewell(room, member)
        elif sender != (self.node_id, self.instance):  # its own: the member is this node's now
            listener.remote_handover(room, member)

    def _on_taken(self, room: str, member: str) -> None:
        """A member of this node resumed on another while this node could not hear it say so
        (its link was down): the same as its hand-over (`_on_request`)."""
        log.info("room %s: %s resumed on another node meanwhile: let go here", room, member)
        listener = self.remote.listener
        if listener is not None:
            listener.remote_handover(room, member)

    def _on_node_back(self, data: bytes) -> None:
        """Another node re-wrote its presence (it reconnected, or found itself swept)."""
        try:
            node = str(orjson.loads(data)["node"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if node != self.node_id:
            log.debug("node %s is back: comparing rooms with Redis", node)
            self._next_reconcile = min(self._next_reconcile, asyncio.get_running_loop().time())

    async def _upkeep(self, client: Redis) -> None:
        loop = asyncio.get_running_loop()
        await self.slots.restore(client)
        if self.outbox.needs_purge:
            await self.outbox.purge(client)
        refresh_every = self.outbox.presence_ttl / 4
        next_refresh = loop.time() + refresh_every
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = loop.time()
            if now < self._quiet_until:
                continue  # just (re)connected: give the other nodes time to come back
            if now >= self._next_reconcile:
                self._next_reconcile = now + self.reconcile_interval
                # (also after each reconnection and each node's return: a member dropped here
                # may have resumed on another node meanwhile, its hand-over unheard)
                self.outbox.rewrite_dropped()
                for room in self.remote.rooms():
                    if self.link.subscribed(self.keys.channel(room)):
                        await self.remote.reconcile(client, room)
            else:
                await self.remote.sweep(client)
            if now >= next_refresh:
                next_refresh = now + refresh_every
                await self.outbox.refresh(client)
