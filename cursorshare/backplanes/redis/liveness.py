"""Which nodes are alive: each node's key holds its instance token, with a short TTL.

A node refreshes its key every ``heartbeat`` seconds; the key expires ``ttl`` seconds after the
node stopped. An entry written by an instance whose node key is gone, or holds another token
(the node restarted), belongs to a dead process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from .keys import KeyLayout, text

log = logging.getLogger("cursorshare.backplanes.redis")


def alive(token: str | None, inst: str) -> bool:
    """Whether a node whose key holds ``token`` is the instance ``inst``."""
    return token == inst


class NodeLiveness:
    def __init__(
        self, keys: KeyLayout, node_id: str, instance: str, *, ttl: float, heartbeat: float
    ) -> None:
        self.keys = keys
        self.node_id = node_id
        self.instance = instance
        self.ttl = ttl
        self.heartbeat = heartbeat

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def claim(self, client: Redis) -> None:
        """Say this instance is alive (on each connection)."""
        await client.set(self.keys.node(self.node_id), self.instance, px=self._ttl_ms())

    async def beat(self, client: Redis, on_lost: Callable[[], None]) -> None:
        """Refresh the key every heartbeat; ``on_lost`` when it had expired meanwhile."""
        key = self.keys.node(self.node_id)
        while True:
            await asyncio.sleep(self.heartbeat)
            previous = await client.set(key, self.instance, px=self._ttl_ms(), get=True)
            if text(previous) != self.instance:
                # A stall, or Redis lost it: the others may have taken this node for dead.
                log.warning("node key %s was gone: re-writing this node's presence", key)
                on_lost()

    def release(self, pipe: Pipeline) -> None:
        """On a clean stop: this node is gone at once, not at the TTL."""
        pipe.delete(self.keys.node(self.node_id))

    async def tokens(self, client: Redis, nodes: set[str]) -> dict[str, str | None]:
        """The instance token of each node (None: the node is dead)."""
        names = sorted(nodes)
        if not names:
            return {}
        values = await client.mget([self.keys.node(name) for name in names])
        return {name: text(value) for name, value in zip(names, values, strict=True)}
