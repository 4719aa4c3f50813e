"""Sessions reachable from every node, in Redis: owner records and a mailbox per node.

The `DirectoryBackend` of `cursorshare.sockjs.directory` (the protocol layer says what is
sent; this says where it is kept and how it travels):

- ``<p>:session:<endpoint>:<id>``: the node holding session ``<id>``, as ``"<node> <inst>"``
  (the backplane's node id and instance token). A record counts only while that node's
  liveness key (`liveness.NodeLiveness`) holds that token, so the sessions of a dead or
  restarted node are free at once; the record's TTL (``record_ttl``, refreshed by its owner)
  only collects what dead nodes left. Claiming and looking up are one script each, one round
  trip.
- ``<p>:mailbox:<endpoint>:<node>``: the pub/sub channel of each node. One writer task sends
  this node's messages and record changes in order, pipelined: one round trip per batch.
- Every ``watch_interval`` seconds the nodes this one relays with are checked (one ``MGET``);
  the dead ones are reported to the directory, which drops their requests.

It has its own connection (a `link.Link`): relayed frames never queue behind room batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from .keys import KeyLayout, text
from .link import LINK_ERRORS, Link


class DirectoryListener(Protocol):
    """What this backend tells the node's session directory (`SessionDirectory` of the
    protocol layer fits it; the backplane does not import the protocol layer)."""

    def receive(self, data: bytes) -> None: ...

    def peers(self) -> set[str]: ...

    def peers_lost(self, peers: set[str]) -> None: ...

    def link_reset(self) -> None: ...

    def owned(self) -> list[str]: ...


log = logging.getLogger("cursorshare.backplanes.redis")

#: KEYS[1]: a session's record. ARGV: this node's "<node> <inst>", the record's TTL in ms,
#: the prefix of node keys, "1" to claim. Returns the live owner other than this node; when
#: claiming, "" if the record names a dead owner (the session was lost with its node: the id
#: is not claimed); else false (after writing this node's record when claiming).
CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  local node, inst = string.match(owner, '^(.*) (%x+)$')
  if node and redis.call('GET', ARGV[3] .. node) == inst then
    return owner
  end
  if ARGV[4] == '1' then
    return ''
  end
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return false
"""

#: Delete KEYS[1] only if it still holds ARGV[1] (another node may have claimed it since).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Owners remembered for sends (a send needs no round trip to find a known session).
OWNER_CACHE = 10_000


@dataclass(slots=True)
class DirectoryStats:
    posted: int = 0
    """Messages sent to other nodes."""
    received: int = 0
    """Messages received from other nodes."""
    round_trips: int = 0
    """Round trips to Redis (scripts and pipelines)."""
    commands: int = 0
    """Redis commands sent (a pipeline of N counts N)."""


def _split(peer: str) -> tuple[str, str]:
    node, _, inst = peer.rpartition(" ")
    return node, inst


class RedisSessionDirectory:
    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        instance: str,
        keys: KeyLayout | None = None,
        endpoint: str = "ws",
        record_ttl: float = 60.0,
        watch_interval: float = 1.0,
        timeout: float = 2.0,
        backoff_min: float = 0.1,
        backoff_max: float = 1.0,
    ) -> None:
        self.node_id = node_id
        self.keys = keys or KeyLayout()
        self.endpoint = endpoint
        self.record_ttl = record_ttl
        self.watch_interval = watch_interval
        self.stats = DirectoryStats()
        self._me = f"{node_id} {instance}"
        self._listener: DirectoryListener | None = None
        self._outgoing: list[tuple[str, str, bytes]] = []
        self._wake: asyncio.Event | None = None
        self._owners: OrderedDict[str, str] = OrderedDict()
        self.link = Link(
            url,
            [self.mailbox(node_id)],
            timeout=timeout,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            on_message=self._on_message,
            on_connect=self._on_connect,
            on_up=self._on_up,
        )

    @classmethod
    def beside(cls, backplane: Any, **options: Any) -> RedisSessionDirectory:
        """A directory for the node of ``backplane`` (a `RedisBackplane`): same Redis, same
        node id and instance, so its liveness key vouches for this node's records."""
        return cls(
            backplane.link.url,
            node_id=backplane.node_id,
            instance=backplane.instance,
            keys=backplane.keys,
            **options,
        )

    # -- the layout -----------------------------------------------------------------------------

    def record(self, session_id: str) -> str:
        return f"{self.keys.prefix}:session:{self.endpoint}:{session_id}"

    def mailbox(self, node_id: str) -> str:
        return f"{self.keys.prefix}:mailbox:{self.endpoint}:{node_id}"

    # -- DirectoryBackend -----------------------------------------------------------------------

    @property
    def me(self) -> str:
        return self._me

    async def start(self, listener: DirectoryListener) -> None:
        self._listener = listener
        self._wake = asyncio.Event()
        await self.link.start()

    async def stop(self) -> None:
        await self.link.stop(self._flush)

    async def claim(self, session_id: str) -> str | None:
        return await self._run_claim(session_id, claim=True)

    async def owner(self, session_id: str) -> str | None:
        cached = self._owners.get(session_id)
        if cached is not None:
            return cached
        owner = await self._run_claim(session_id, claim=False)
        if owner is not None:
            self._owners[session_id] = owner
            if len(self._owners) > OWNER_CACHE:
                self._owners.popitem(last=False)
        return owner

    def release(self, session_id: str) -> None:
        self._queue("release", session_id, b"")

    def post(self, peer: str, data: bytes) -> None:
        if self.link.client is None:
            return  # Redis is away: the peer's answer times out, as if it had died
        self.stats.posted += 1
        self._queue("post", peer, data)

    def forget_owner(self, session_id: str) -> None:
        self._owners.pop(session_id, None)

    # -- internals --------------------------------------------------------------------------------

    async def _run_claim(self, session_id: str, *, claim: bool) -> str | None:
        client = self.link.client
        if client is None:
            return None  # Redis is away: this node serves what reaches it, as a lone node
        try:
            self.stats.round_trips += 1
            self.stats.commands += 1
            owner = await client.eval(
                CLAIM,
                1,
                self.record(session_id),
                self._me,
                int(self.record_ttl * 1000),
                self.keys.node(""),
                "1" if claim else "0",
            )
        except LINK_ERRORS as exc:
            self.link.failed(exc)
            return None
        return text(owner)

    def _queue(self, kind: str, target: str, data: bytes) -> None:
        self._outgoing.append((kind, target, data))
        if self._wake is not None:
            self._wake.set()

    async def _writer(self, client: Redis) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush(client)

    async def _flush(self, client: Redis) -> None:
        batch, self._outgoing = self._outgoing, []
        if not batch:
            return
        pipe = client.pipeline(transaction=False)
        for kind, target, data in batch:
            if kind == "post":
                node, _ = _split(target)
                pipe.publish(self.mailbox(node), data)
            else:
                pipe.eval(RELEASE, 1, self.record(target), self._me)
        self.stats.round_trips += 1
        self.stats.commands += len(batch)
        await pipe.execute()

    async def _watch(self, client: Redis) -> None:
        """Report the peers whose liveness key is gone or names another instance."""
        assert self._listener is not None
        refresh_every = self.record_ttl / 3
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + refresh_every
        while True:
            await asyncio.sleep(self.watch_interval)
            peers = sorted(self._listener.peers())
            if peers:
                nodes = [_split(peer) for peer in peers]
                self.stats.round_trips += 1
                self.stats.commands += 1
                tokens = await client.mget([self.keys.node(node) for node, _ in nodes])
                lost = {
                    peer
                    for peer, (_, inst), token in zip(peers, nodes, tokens, strict=True)
                    if text(token) != inst
                }
                if lost:
                    log.info("relays with %d dead nodes dropped", len(lost))
                    self._forget_owners(lost)
                    self._listener.peers_lost(lost)
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + refresh_every
                await self._refresh(client)

    async def _refresh(self, client: Redis) -> None:
        """Keep this node's records from expiring (their TTL only collects dead nodes')."""
        assert self._listener is not None
        owned = self._listener.owned()
        if not owned:
            return
        pipe = client.pipeline(transaction=False)
        ttl_ms = int(self.record_ttl * 1000)
        for session_id in owned:
            pipe.pexpire(self.record(session_id), ttl_ms)
        self.stats.round_trips += 1
        self.stats.commands += len(owned)
        await pipe.execute()

    def _forget_owners(self, peers: set[str]) -> None:
        for session_id in [s for s, owner in self._owners.items() if owner in peers]:
            del self._owners[session_id]

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if self._listener is None:
            return
        self.stats.received += 1
        self._listener.receive(data)

    async def _on_connect(self, client: Redis) -> None:
        self._owners.clear()  # owners may have died while the link was down

    def _on_up(self, client: Redis, outage: float | None) -> list[Coroutine[Any, Any, None]]:
        if outage is None:
            log.info("session directory up: node %s", self.node_id)
        elif self._listener is not None:
            self._listener.link_reset()  # (posts wait for the writer, started below)
        return [self._writer(client), self._watch(client)]
