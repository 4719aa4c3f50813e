"""Small shared records with a time to live, and slots claimed per room: what an app needs to
keep an identity across reconnections and to spread members over a few slots (colours...).

Both are generic: a record is opaque JSON under an opaque key, in an opaque scope (an app's
room: a take naming another scope gets nothing and leaves the record as it was), a slot is a
number below N. In
one process the `MemoryTtlStore` and `least_used` do; a backplane linking several nodes offers
shared ones (`Backplane.shared_store`, `Backplane.claim_slot`).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from .events import JSON


class StoreUnavailable(Exception):
    """The store cannot be reached now (a shared store whose link is down)."""


class TtlStore(Protocol):
    async def put(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        """Keep ``record`` under ``key`` for ``ttl`` seconds (replacing what was there)."""

    async def hold(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        """Keep ``record`` under ``key`` held by this process (replacing what was there): no
        take gets it while this process lives, and it is kept ``ttl`` seconds (at least) after
        this process is gone, for a take on another one. Never raises: a shared store that
        cannot be reached now writes it once it can."""

    async def discard(self, key: str) -> None:
        """Remove the record under ``key``, unless another process holds it now."""

    async def take(self, key: str, scope: str = "") -> JSON | None:
        """Remove and return the record under ``key`` (None: none, expired, of another
        ``scope``, or held by a process that lives). Atomic: of two concurrent takes of one
        key, one gets the record."""

    async def seize(self, key: str, scope: str = "") -> JSON | None:
        """Return the record under ``key`` and hold it in this process from now on, even when
        another process that lives holds it (None: none, expired, of another ``scope``, or
        held by this process already). Atomic: of two concurrent seizes of one key, each gets
        it in turn, the last holds it. The earlier holder, told separately, lets its copy go
        (`discard`)."""

    async def end(self, key: str) -> JSON | None:
        """Remove and return the record under ``key`` whoever holds it (None: none, expired,
        or held by this process, which keeps no copy here): its owner ended it for good, so
        no take gets it from now on. The holder, told separately, discards its own copy."""


class MemoryTtlStore:
    """A `TtlStore` in this process; expired records are dropped as later ones are put. A held
    record is this process's own, so no take gets it until it is put (released) or discarded."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: key -> (clock time it expires, record, scope), in the order they were put.
        self._records: OrderedDict[str, tuple[float, JSON, str]] = OrderedDict()
        #: key -> scope of the records this process holds.
        self._held: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._records) + len(self._held)

    async def hold(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        self._records.pop(key, None)
        self._held[key] = scope

    async def discard(self, key: str) -> None:
        self._records.pop(key, None)
        self._held.pop(key, None)

    async def put(self, key: str, record: JSON, ttl: float, scope: str = "") -> None:
        now = self._clock()
        self._held.pop(key, None)
        self._records.pop(key, None)
        self._records[key] = (now + ttl, record, scope)
        # Oldest first: with one ttl (an app's grace) they also expire in this order.
        while self._records:
            first = next(iter(self._records.values()))
            if first[0] > now:
                break
            self._records.popitem(last=False)

    async def end(self, key: str) -> JSON | None:
        self._held.pop(key, None)
        found = self._records.pop(key, None)
        return None if found is None or found[0] <= self._clock() else found[1]

    async def seize(self, key: str, scope: str = "") -> JSON | None:
        # One process: a held record is this process's own, and nobody else holds any.
        found = None if key in self._held else await self.take(key, scope)
        if found is not None:
            self._held[key] = scope
        return found

    async def take(self, key: str, scope: str = "") -> JSON | None:
        found = self._records.get(key)
        if found is None or found[2] != scope:
            return None
        del self._records[key]
        return found[1] if found[0] > self._clock() else None


def least_used(taken: Iterable[int], slots: int) -> int:
    """The slot below ``slots`` that fewest of ``taken`` hold (ties: the lowest)."""
    counts = Counter(slot for slot in taken if 0 <= slot < slots)
    return min(range(slots), key=lambda slot: (counts[slot], slot))
