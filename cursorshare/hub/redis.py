"""The Redis backplane: rooms shared between nodes through Redis pub/sub, presence in hashes.

Keys and channels (``<p>`` is the prefix, ``cursorshare`` by default):

- ``<p>:room:<room>`` — pub/sub channel of a room. A node subscribes only to the rooms it has
  members in. A message is ``{"node": id, "inst": token, "events": [Event.to_wire(), ...]}``
  (orjson): one node's coalesced batch of one tick. A node ignores its own messages.
- ``<p>:presence:<room>`` — hash ``user id -> {record..., "node": id, "inst": token}`` of the
  users present in the room, on any node; what a node joining the room is told. It expires
  ``presence_ttl`` seconds after the last node with users in the room stopped refreshing it.
- ``<p>:nodes`` — channel where a node says it (re)wrote its presence after (re)connecting,
  so that the others compare their rooms with Redis at once.
- ``<p>:node:<id>`` — the node's liveness key: its instance token, with a TTL of ``node_ttl``
  seconds, refreshed every ``heartbeat`` seconds. A user whose node key is gone (or holds a
  different token: the node restarted) belongs to a dead node.

One writer task pipelines everything a node sends (presence HSET/HDEL, then PUBLISH), so
``publish`` never awaits: it serialises the batch, puts it in a bounded outbox (the oldest
batches are dropped, and counted, while Redis is away) and marks the changed users' presence
dirty; presence is written from this node's own view of its users, so nothing is lost by
dropping batches but moves. (The dirty set is bounded too: past ``dirty_limit`` while Redis is
away, departures are forgotten, and a scan after reconnecting removes them from the hashes.)

Every ``sweep_interval`` seconds a sweeper checks the nodes of the remote users this node
knows of; users of dead nodes are removed from the hash and reported as left. Every
``reconcile_interval`` seconds (and ``node_ttl`` seconds after each (re)connection, and when
another node says it is back) each room's hash is compared with what this node told its hub:
users it missed are reported as joined, users gone from the hash as left, users who moved
meanwhile moved. So after an outage every node converges. Reads of Redis are ordered against
messages by a change counter, so a message that overtakes a read is never undone by it.

When Redis goes away the node keeps serving its local users: ``state`` becomes ``"down"``,
the outage is logged once, and a supervisor reconnects with exponential backoff (capped at
``backoff_max``), re-subscribes the rooms, re-writes this node's presence and logs the
recovery once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .backplane import Backplane, RemoteEvents
from .events import JSON, Event, Kind

log = logging.getLogger("cursorshare.hub.redis")

#: What a lost link to Redis raises.
LINK_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

#: HDEL each field of the hash KEYS[1] whose value still contains its needle: ARGV holds
#: field, needle, field, needle... A node never removes an entry that its owner re-wrote
#: between the read that found it stale and the delete.
DELETE_IF_CONTAINS = """
local removed = 0
for i = 1, #ARGV, 2 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and string.find(value, ARGV[i + 1], 1, true) then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
"""


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
    """Users of dead nodes reported as left."""
    reconciled: int = 0
    """Joins and leaves found by comparing a room's presence hash with what the hub knows."""


@dataclass(slots=True)
class _Remote:
    """A user on another node, as this node told its hub."""

    node: str
    inst: str | None
    record: JSON
    #: Value of the change counter when this user last changed (see ``RedisBackplane._seq``).
    seq: int


@dataclass(slots=True, eq=False)
class _View:
    """What this node knows of a room it has members in."""

    #: join_room calls minus leave_room calls (a leave may run after the next join started).
    refs: int = 0
    remote: dict[str, _Remote] = field(default_factory=dict)
    #: Users that left since the last reconcile: user -> change counter at the leave.
    gone: dict[str, int] = field(default_factory=dict)
    #: While join_room reads the snapshot: the room's messages that arrived meanwhile.
    joining: list[tuple[str, str | None, list[Event]]] | None = None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


def _decode_record(raw: bytes | str) -> JSON | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "id" in record else None


async def _cancel(tasks: Iterable[asyncio.Task[None]], patience: float = 0.25) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again those that go on: on
    Python 3.11 a cancellation can be lost (redis-py sends every command under
    ``asyncio.wait_for``, which swallows a cancel that lands as the send completes)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for _ in range(20):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=patience)
    else:
        log.error("%d backplane tasks would not stop", len(pending))
    # Several tasks can fail with the same lost link; the first failure was reported, the
    # others are the same outage and must not surface later as "never retrieved".
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


def _needle(remote: _Remote) -> bytes:
    """What the presence entry of a user written by ``remote``'s process contains."""
    if remote.inst is not None:
        return b'"inst":' + orjson.dumps(remote.inst)
    return b'"node":' + orjson.dumps(remote.node)


def _alive(token: str | None, inst: str | None) -> bool:
    """Whether a node whose key holds ``token`` is the instance ``inst`` that wrote a record."""
    return token is not None and (inst is None or token == inst)


def arrival_events(user: str, record: JSON) -> list[Event]:
    """The events that tell a hub of a user it missed: a join, then a move to its position."""
    join = {
        "type": "join",
        "id": user,
        "color": record.get("color"),
        "name": record.get("name", ""),
    }
    events = [Event(Kind.JOIN, user, join, dict(record), local=False)]
    move = move_event(user, record)
    if move is not None:
        events.append(move)
    return events


def move_event(user: str, record: JSON) -> Event | None:
    """A move to the position in ``record`` (None when it has none yet)."""
    x, y = record.get("x"), record.get("y")
    if x is None or y is None:
        return None
    color = record.get("color")
    data: JSON
    if record.get("px"):  # a tutorial client: its moves carry no type
        data = {"x": x, "y": y, "sender": user, "color": color}
    else:
        name = record.get("name", "")
        data = {"type": "move", "sender": user, "color": color, "name": name, "x": x, "y": y}
    # The codec tells a tutorial client's move by ``px`` in the state.
    state = {"x": x, "y": y, "px": bool(record.get("px"))}
    return Event(Kind.MOVE, user, data, state, local=False)


def leave_event(user: str) -> Event:
    return Event(Kind.LEAVE, user, {"type": "leave", "id": user}, {}, local=False)


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
    ) -> None:
        self.url = url
        self.node_id = node_id
        self.prefix = prefix
        self.node_ttl = node_ttl
        self.heartbeat = heartbeat
        self.sweep_interval = sweep_interval
        self.reconcile_interval = reconcile_interval
        self.presence_ttl = presence_ttl
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.outbox_limit = outbox_limit
        self.batch_limit = batch_limit
        self.dirty_limit = dirty_limit
        self.timeout = timeout
        self.stats = BackplaneStats()
        #: Distinguishes this process from an earlier one that used the same node id.
        self.instance = secrets.token_hex(8)

        self._on_remote: RemoteEvents | None = None
        self._state = "down"
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Future[None] | None = None
        self._down_since: float | None = None

        self._views: dict[str, _View] = {}
        #: This node's users: room -> user -> serialised presence record.
        self._local: dict[str, dict[str, bytes]] = {}
        #: Local users whose presence must be (re)written: room -> users.
        self._dirty: dict[str, set[str]] = {}
        self._dirty_count = 0
        self._dirty_threshold = dirty_limit
        #: Departures were forgotten to bound ``_dirty``: clean this node's entries by a scan.
        self._purge_own = False
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        #: Counts every change to a remote view; orders them against Redis reads.
        self._seq = 0

        # One connection session (see _session); None while the link is down.
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._failed: asyncio.Event | None = None
        self._subscribed: set[str] = set()
        self._sub_lock = asyncio.Lock()
        self._sub_waiters: dict[bytes, asyncio.Future[None]] = {}
        self._quiet_until = 0.0
        self._next_reconcile = 0.0
        #: Tell the other nodes, once this node's presence is written, to compare theirs.
        self._announce = False
        self._foreign_warned = False

    # -- keys ---------------------------------------------------------------------------------

    def channel(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def presence_key(self, room: str) -> str:
        return f"{self.prefix}:presence:{room}"

    def node_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    @property
    def nodes_channel(self) -> str:
        """Where a node that (re)connected says so, for the others to reconcile at once."""
        return f"{self.prefix}:nodes"

    # -- Backplane ----------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return asdict(self.stats)

    @property
    def state(self) -> str:
        return self._state

    async def start(self, on_remote: RemoteEvents) -> None:
        self._on_remote = on_remote
        loop = asyncio.get_running_loop()
        self._first_attempt = loop.create_future()
        self._supervisor = loop.create_task(self._supervise(), name="redis-backplane")
        # Start serving either way; but when Redis is there, start "up".
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._first_attempt), self.timeout)

    async def stop(self) -> None:
        self._stopping = True
        client = self._client
        if client is not None and self._state == "up":
            try:
                await asyncio.wait_for(self._farewell(client), self.timeout)
            except LINK_ERRORS as exc:
                log.warning("could not remove this node's presence from Redis: %s", exc)
        if self._supervisor is not None:
            await _cancel([self._supervisor])
            self._supervisor = None
        if self._closing is not None:
            await asyncio.wait([self._closing], timeout=self.timeout)
        self._state = "down"

    async def join_room(self, room: str) -> list[JSON]:
        view = self._views.get(room)
        if view is None:
            view = self._views[room] = _View()
        view.refs += 1
        # The hub's room is new: it knows nobody yet.
        view.remote.clear()
        view.gone.clear()
        if self._state != "up":
            return []  # the reconcile after reconnecting reports the others
        buffer: list[tuple[str, str | None, list[Event]]] = []
        view.joining = buffer
        try:
            if not await self._subscribe([room]):
                return []
            users = await self._snapshot(room)
        except LINK_ERRORS as exc:
            self._link_failed(exc)
            return []
        finally:
            if view.joining is buffer:
                view.joining = None
        # Messages that arrived while the snapshot was read are newer than the subscription:
        # replay them on the snapshot (it may already reflect some; the last change wins).
        for node, inst, events in buffer:
            for event in events:
                if event.kind is Kind.LEAVE:
                    users.pop(event.sender, None)
                    continue
                current = users.get(event.sender)
                if event.kind is Kind.JOIN or current is None:
                    record = dict(event.state)
                    record.setdefault("id", event.sender)
                    users[event.sender] = _Remote(node, inst, record, 0)
                else:
                    current.record.update(event.state)
        for remote in users.values():
            self._seq += 1
            remote.seq = self._seq
        view.remote = users
        return [dict(remote.record) for remote in users.values()]

    async def leave_room(self, room: str) -> None:
        view = self._views.get(room)
        if view is None:
            return
        view.refs -= 1
        if view.refs > 0:
            return  # the hub made the room again meanwhile
        del self._views[room]
        if self._state == "up":
            try:
                await self._subscribe([room])
            except LINK_ERRORS as exc:
                self._link_failed(exc)

    def publish(self, room: str, events: list[Event], presence: dict[str, JSON | None]) -> None:
        if self._stopping and self._supervisor is None:
            return
        if presence:
            local = self._local.setdefault(room, {})
            dirty = self._dirty.setdefault(room, set())
            for user, record in presence.items():
                if record is None:
                    local.pop(user, None)
                else:
                    local[user] = orjson.dumps(
                        {**record, "node": self.node_id, "inst": self.instance}
                    )
                if user not in dirty:
                    dirty.add(user)
                    self._dirty_count += 1
            if not local:
                del self._local[room]
            if self._dirty_count > self._dirty_threshold and self._state != "up":
                self._forget_departures()
        if events:
            message = orjson.dumps(
                {
                    "node": self.node_id,
                    "inst": self.instance,
                    "events": [event.to_wire() for event in events],
                }
            )
            if len(self._outbox) >= self.outbox_limit:
                self._outbox.popleft()
                self.stats.dropped += 1
            self._outbox.append((room, message))
        self._idle.clear()
        self._wake.set()

    def _forget_departures(self) -> None:
        """Bound what waits to be written while Redis is away: keep the present users (their
        records are re-written anyway) and forget who left; a scan after reconnecting removes
        this node's entries of users who are not here any more."""
        for room, users in list(self._dirty.items()):
            local = self._local.get(room, {})
            users.intersection_update(local)
            if not users:
                del self._dirty[room]
        self._dirty_count = sum(len(users) for users in self._dirty.values())
        self._dirty_threshold = max(self.dirty_limit, 2 * self._dirty_count)
        if not self._purge_own:
            self._purge_own = True
            log.warning("too many presence changes waiting for Redis: forgetting departures")

    # -- the link -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.backoff_min
        while not self._stopping:
            error: BaseException | None = None
            connected_at = loop.time()
            try:
                await self._session()
            except LINK_ERRORS as exc:
                error = exc
            except Exception as exc:  # a bug must not end the node's link for good
                log.exception("Redis backplane session failed")
                error = exc
            finally:
                if self._first_attempt is not None and not self._first_attempt.done():
                    self._first_attempt.set_result(None)
            if self._stopping:
                break
            if self._down_since is None:
                self._down_since = loop.time()
                self.stats.outages += 1
                log.warning(
                    "Redis backplane down (%s): serving local users only, reconnecting to %s",
                    error or "connection lost",
                    self.url,
                )
            if loop.time() - connected_at > self.backoff_max * 4:
                backoff = self.backoff_min  # it had been up for a while: retry at once
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    def _link_failed(self, exc: BaseException) -> None:
        log.debug("Redis backplane error: %s", exc)
        if self._failed is not None:
            self._failed.set()

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),  # the supervisor reconnects, with its own backoff
            health_check_interval=0,
        )
        pubsub = client.pubsub()
        failed = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            await asyncio.wait_for(client.ping(), self.timeout)
            await client.set(self.node_key(self.node_id), self.instance, px=self._ttl_ms())
            # The nodes channel: always subscribed (also proves the reader works).
            confirmed = self._waiter()
            self._sub_waiters = {self.nodes_channel.encode(): confirmed}
            await pubsub.subscribe(self.nodes_channel)
            tasks.append(loop.create_task(self._read(pubsub)))
            await asyncio.wait_for(asyncio.shield(confirmed), self.timeout)

            self._client, self._pubsub, self._failed = client, pubsub, failed
            self._subscribed = set()
            self._quiet_until = loop.time() + self.node_ttl
            self._next_reconcile = self._quiet_until
            # From now on join_room subscribes by itself; the rooms joined before, here.
            self._state = "up"
            await self._subscribe(list(self._views))
            # Re-write this node's presence (Redis may have lost it, or others swept it).
            for room, users in self._local.items():
                self._dirty.setdefault(room, set()).update(users)
                self._dirty_count += len(users)
            self._announce = True
            if self._down_since is not None:
                log.warning(
                    "Redis backplane up again after %.1f s (%d batches dropped so far)",
                    loop.time() - self._down_since,
                    self.stats.dropped,
                )
                self._down_since = None
            else:
                log.info("Redis backplane up: %s as node %s", self.url, self.node_id)
            if self._first_attempt is not None and not self._first_attempt.done():
                self._first_attempt.set_result(None)
            self._wake.set()
            tasks += [
                loop.create_task(self._write(client)),
                loop.create_task(self._beat(client)),
                loop.create_task(self._maintain(client)),
            ]
            failure = loop.create_task(failed.wait())
            try:
                done, _ = await asyncio.wait([*tasks, failure], return_when="FIRST_COMPLETED")
            finally:
                failure.cancel()
            for task in done:
                if task is not failure and not task.cancelled():
                    task.result()  # raises what ended it
        finally:
            if not self._stopping:
                self._state = "down"
            self._client = self._pubsub = self._failed = None
            self._subscribed = set()
            for waiter in self._sub_waiters.values():
                if not waiter.done():
                    waiter.set_exception(RedisConnectionError("the link to Redis was lost"))
            self._sub_waiters = {}
            # Closing goes on even if this is cancelled (stop() waits for it).
            self._closing = loop.create_task(self._close(tasks, pubsub, client))
            await asyncio.shield(self._closing)

    @staticmethod
    async def _close(tasks: list[asyncio.Task[None]], pubsub: PubSub, client: Redis) -> None:
        await _cancel(tasks)
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await client.aclose()

    def _ttl_ms(self) -> int:
        return max(1, int(self.node_ttl * 1000))

    async def _subscribe(self, rooms: Iterable[str]) -> bool:
        """Make the subscriptions of ``rooms`` match the rooms this node has members in.

        Waits for Redis to confirm new subscriptions: anything published afterwards reaches
        this node. False when the link is down.
        """
        async with self._sub_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return False
            add = [r for r in rooms if r in self._views and r not in self._subscribed]
            drop = [r for r in rooms if r not in self._views and r in self._subscribed]
            if drop:
                self._subscribed.difference_update(drop)
                await pubsub.unsubscribe(*[self.channel(r) for r in drop])
            if add:
                waiters = []
                for room in add:
                    waiter = self._waiter()
                    self._sub_waiters[self.channel(room).encode()] = waiter
                    waiters.append(waiter)
                await pubsub.subscribe(*[self.channel(r) for r in add])
                await asyncio.wait_for(asyncio.gather(*waiters), self.timeout)
                self._subscribed.update(add)
            return True

    @staticmethod
    def _waiter() -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Failed waiters nobody awaits any more must not be logged as unretrieved.
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        return waiter

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                if message["channel"] == self.nodes_channel.encode():
                    self._on_node_back(message["data"])
                else:
                    self._on_message(message["channel"], message["data"])
            elif kind == "subscribe":
                waiter = self._sub_waiters.pop(message["channel"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        room = channel.decode().removeprefix(f"{self.prefix}:room:")
        view = self._views.get(room)
        if view is None:
            return
        try:
            payload = orjson.loads(data)
            node = str(payload["node"])
            inst = payload.get("inst")
            if node == self.node_id:
                if inst != self.instance and not self._foreign_warned:
                    self._foreign_warned = True
                    log.warning("another process publishes as node %s: node ids must differ", node)
                return
            events = [Event.from_wire(item) for item in payload["events"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropped a malformed backplane message on %s: %s", room, exc)
            return
        self.stats.received += 1
        if view.joining is not None:
            view.joining.append((node, inst, events))
            return
        deliver = self._apply(view, node, inst, events)
        if deliver and self._on_remote is not None:
            self._on_remote(room, deliver)

    def _on_node_back(self, data: bytes) -> None:
        """Another node re-wrote its presence (it reconnected, or found itself swept)."""
        try:
            node = str(orjson.loads(data)["node"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if node != self.node_id:
            log.debug("node %s is back: comparing rooms with Redis", node)
            self._next_reconcile = min(self._next_reconcile, asyncio.get_running_loop().time())

    def _apply(self, view: _View, node: str, inst: str | None, events: list[Event]) -> list[Event]:
        """Record remote events in the room's view; returns those the hub must see."""
        deliver = []
        for event in events:
            self._seq += 1
            user = event.sender
            known = view.remote.get(user)
            if event.kind is Kind.LEAVE:
                if known is None:
                    continue  # already reported as left (sweeper or reconcile)
                del view.remote[user]
                view.gone[user] = self._seq
            elif event.kind is Kind.JOIN:
                record = dict(event.state)
                record.setdefault("id", user)
                view.remote[user] = _Remote(node, inst, record, self._seq)
                view.gone.pop(user, None)
                if known is not None:
                    continue  # a reconcile reported this join already
            elif known is None:
                record = {"id": user, **event.state}
                view.remote[user] = _Remote(node, inst, record, self._seq)
                view.gone.pop(user, None)
            else:
                known.record.update(event.state)
                known.seq = self._seq
            deliver.append(event)
        return deliver

    def _deliver(self, room: str, events: list[Event]) -> None:
        if events and self._on_remote is not None:
            self._on_remote(room, events)

    # -- writing ------------------------------------------------------------------------------

    async def _write(self, client: Redis) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox or self._dirty:
                count = min(len(self._outbox), self.batch_limit)
                messages = [self._outbox.popleft() for _ in range(count)]
                dirty, self._dirty = self._dirty, {}
                self._dirty_count = 0
                pipe = client.pipeline(transaction=False)
                for room, users in dirty.items():
                    key = self.presence_key(room)
                    local = self._local.get(room, {})
                    present = {user: local[user] for user in users if user in local}
                    absent = [user for user in users if user not in local]
                    if present:
                        pipe.hset(key, mapping=present)  # type: ignore[arg-type]
                        pipe.expire(key, self.presence_ttl)
                    if absent:
                        pipe.hdel(key, *absent)
                for room, message in messages:
                    pipe.publish(self.channel(room), message)
                try:
                    await pipe.execute()
                except BaseException:
                    for room, users in dirty.items():
                        self._dirty.setdefault(room, set()).update(users)
                        self._dirty_count += len(users)
                    self.stats.dropped += len(messages)
                    raise
                self.stats.published += len(messages)
            if self._announce:
                await client.publish(
                    self.nodes_channel,
                    orjson.dumps({"node": self.node_id, "inst": self.instance}),
                )
                self._announce = False
            self._idle.set()

    async def _farewell(self, client: Redis) -> None:
        """On a clean stop: send what is pending, then remove this node's presence."""
        self._wake.set()
        await self._idle.wait()
        pipe = client.pipeline(transaction=False)
        for room, users in self._local.items():
            pipe.hdel(self.presence_key(room), *users)
        pipe.delete(self.node_key(self.node_id))
        await pipe.execute()
        self._local.clear()
        self._dirty.clear()
        self._dirty_count = 0

    # -- liveness -----------------------------------------------------------------------------

    async def _beat(self, client: Redis) -> None:
        key = self.node_key(self.node_id)
        while True:
            await asyncio.sleep(self.heartbeat)
            previous = await client.set(key, self.instance, px=self._ttl_ms(), get=True)
            if _text(previous) != self.instance:
                # Our key had expired (a stall, or Redis lost it): others may have swept our
                # users; write them back (their reconcile reports them as joined again).
                log.warning("node key %s was gone: re-writing this node's presence", key)
                for room, users in self._local.items():
                    self._dirty.setdefault(room, set()).update(users)
                    self._dirty_count += len(users)
                self._announce = True
                self._wake.set()

    async def _maintain(self, client: Redis) -> None:
        loop = asyncio.get_running_loop()
        if self._purge_own:
            await self._purge(client)
        next_refresh = loop.time() + self.presence_ttl / 4
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = loop.time()
            if now < self._quiet_until:
                continue  # just (re)connected: give the other nodes time to come back
            if now >= self._next_reconcile:
                self._next_reconcile = now + self.reconcile_interval
                for room in list(self._views):
                    await self._reconcile(client, room)
            else:
                await self._sweep(client)
            if now >= next_refresh:
                next_refresh = now + self.presence_ttl / 4
                pipe = client.pipeline(transaction=False)
                for room in self._local:
                    pipe.expire(self.presence_key(room), self.presence_ttl)
                await pipe.execute()

    async def _purge(self, client: Redis) -> None:
        """Remove this node's presence entries of users not here any more, in every room."""
        prefix = self.presence_key("")
        removed = 0
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            room = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
            local = self._local.get(room, {})
            stale: list[bytes | str] = []
            for user, raw in (await client.hgetall(key)).items():
                record = _decode_record(raw)
                if record is not None and record.get("node") == self.node_id:
                    name = user.decode() if isinstance(user, bytes) else str(user)
                    if name not in local or record.get("inst") != self.instance:
                        stale += [name, raw]
            if stale:
                removed += int(await client.eval(DELETE_IF_CONTAINS, 1, key, *stale))
        self._purge_own = False
        log.info("removed %d presence entries of users who left while Redis was away", removed)

    async def _tokens(self, client: Redis, nodes: set[str]) -> dict[str, str | None]:
        names = sorted(nodes)
        if not names:
            return {}
        values = await client.mget([self.node_key(n) for n in names])
        return {n: _text(v) for n, v in zip(names, values, strict=True)}

    async def _sweep(self, client: Redis) -> None:
        """Report the users of dead nodes as left, and remove them from the rooms' hashes."""
        seq = self._seq
        nodes = {r.node for view in self._views.values() for r in view.remote.values()}
        tokens = await self._tokens(client, nodes)
        dead: dict[str, list[bytes | str]] = {}
        for room, view in self._views.items():
            if view.joining is not None:
                continue
            gone = [
                user
                for user, remote in view.remote.items()
                if remote.seq <= seq and not _alive(tokens.get(remote.node), remote.inst)
            ]
            if not gone:
                continue
            dead[room] = [x for user in gone for x in (user, _needle(view.remote[user]))]
            for user in gone:
                del view.remote[user]
                self._seq += 1
                view.gone[user] = self._seq
            self.stats.swept += len(gone)
            log.info("%d users of dead nodes left room %s", len(gone), room)
            self._deliver(room, [leave_event(user) for user in gone])
        if dead:
            pipe = client.pipeline(transaction=False)
            for room, pairs in dead.items():
                pipe.eval(DELETE_IF_CONTAINS, 1, self.presence_key(room), *pairs)
            await pipe.execute()

    async def _snapshot(self, room: str) -> dict[str, _Remote]:
        """The room's users on live nodes other than this one; removes those of dead nodes."""
        client = self._client
        if client is None:
            return {}
        key = self.presence_key(room)
        entries = await client.hgetall(key)
        records: dict[str, tuple[str, str | None, JSON, bytes | str]] = {}
        for raw in entries.values():
            record = _decode_record(raw)
            if record is None:
                continue
            node = str(record.pop("node", ""))
            inst = record.pop("inst", None)
            records[str(record["id"])] = (node, inst, record, raw)
        tokens = await self._tokens(client, {node for node, _, _, _ in records.values()})
        users: dict[str, _Remote] = {}
        stale: list[bytes | str] = []
        for user, (node, inst, record, raw) in records.items():
            if node == self.node_id:
                if inst != self.instance or user not in self._local.get(room, {}):
                    stale += [user, raw]  # an earlier life of this node, or a lost HDEL
            elif not _alive(tokens.get(node), inst):
                stale += [user, raw]
            else:
                users[user] = _Remote(node, inst, record, 0)
        if stale:
            await client.eval(DELETE_IF_CONTAINS, 1, key, *stale)
        return users

    async def _reconcile(self, client: Redis, room: str) -> None:
        """Compare the room's hash with what the hub was told; report the difference."""
        view = self._views.get(room)
        if view is None or view.joining is not None or room not in self._subscribed:
            return
        seq = self._seq
        present = await self._snapshot(room)
        if self._views.get(room) is not view or view.joining is not None:
            return
        events: list[Event] = []
        joins = leaves = moves = 0
        for user, remote in present.items():
            known = view.remote.get(user)
            if known is not None:
                # Still there; a position it reached while messages were lost is caught up.
                at = (remote.record.get("x"), remote.record.get("y"))
                if known.seq <= seq and at != (known.record.get("x"), known.record.get("y")):
                    move = move_event(user, remote.record)
                    if move is not None:
                        known.record.update(x=at[0], y=at[1])
                        events.append(move)
                        moves += 1
                continue
            left = view.gone.get(user)
            if left is not None and left > seq:
                continue  # it left while the hash was being read
            self._seq += 1
            remote.seq = self._seq
            view.remote[user] = remote
            events += arrival_events(user, remote.record)
            joins += 1
        for user, remote in list(view.remote.items()):
            if user not in present and remote.seq <= seq:
                del view.remote[user]
                events.append(leave_event(user))
                leaves += 1
        view.gone.clear()
        if events:
            self.stats.reconciled += joins + leaves
            log.info(
                "room %s, compared with Redis: %d joins, %d leaves, %d positions caught up",
                room,
                joins,
                leaves,
                moves,
            )
            self._deliver(room, events)
