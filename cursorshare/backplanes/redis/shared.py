"""What the nodes share in Redis besides rooms: records with a time to live (the `TtlStore`
an app keeps identities in) and slots claimed per room (`CLAIM_SLOT`).

Both go through the link's current client; while the link is down they are unavailable (the
store raises `StoreUnavailable`, a claim returns None), and the node carries on alone.
"""

from __future__ import annotations

import logging

import orjson

from ...hub import JSON, StoreUnavailable
from .keys import CLAIM_SLOT, KeyLayout
from .link import LINK_ERRORS, Link

log = logging.getLogger("cursorshare.backplanes.redis")


class RedisTtlStore:
    """A `TtlStore` in Redis: ``SET ... PX`` to put, ``GETDEL`` to take (atomic)."""

    def __init__(self, link: Link, keys: KeyLayout) -> None:
        self.link = link
        self.keys = keys

    async def put(self, key: str, record: JSON, ttl: float) -> None:
        client = self.link.client
        if client is None:
            raise StoreUnavailable("the link to Redis is down")
        try:
            await client.set(self.keys.kept(key), orjson.dumps(record), px=max(1, int(ttl * 1000)))
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def take(self, key: str) -> JSON | None:
        client = self.link.client
        if client is None:
            raise StoreUnavailable("the link to Redis is down")
        try:
            raw = await client.getdel(self.keys.kept(key))
        except LINK_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if raw is None:
            return None
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return record if isinstance(record, dict) else None


class SlotClaims:
    """Claims slots with `CLAIM_SLOT`; a claim counts for ``hold`` seconds before its member's
    presence entry must be there, and the room's claims expire with its presence hash."""

    def __init__(self, link: Link, keys: KeyLayout, *, hold: float, ttl: int) -> None:
        self.link = link
        self.keys = keys
        self.hold = hold
        self.ttl = ttl

    async def claim(self, room: str, member: str, slots: int, keep: int | None) -> int | None:
        client = self.link.client
        if client is None:
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
            return None
        return int(slot)
