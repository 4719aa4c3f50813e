"""Members whose session dropped, kept for their grace so that their client can resume them:
bounded per client address and overall, so that a client opening and closing sessions quickly
cannot leave a crowd of "reconnecting" cursors behind it."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Droppable(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def address(self) -> str:
        """The client address its session came from."""


M = TypeVar("M", bound=Droppable)


class DroppedMembers(Generic[M]):
    """Dropped members by id, oldest first; `add` says which ones must leave at once."""

    def __init__(self, *, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        #: Every dropped member, in the order they dropped.
        self._members: dict[str, M] = {}
        #: The same, per client address.
        self._by_address: dict[str, dict[str, M]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def of_address(self, address: str) -> int:
        return len(self._by_address.get(address, {}))

    def add(self, member: M) -> list[M]:
        """Keep ``member``; returns those past the bounds (the oldest of its address, then the
        oldest overall), forgotten here, who must leave now."""
        self._members[member.id] = member
        mine = self._by_address.setdefault(member.address, {})
        mine[member.id] = member
        evicted: list[M] = []
        while len(mine) > self.per_address:
            evicted.append(self._forget(next(iter(mine.values()))))
        while len(self._members) > self.total:
            evicted.append(self._forget(next(iter(self._members.values()))))
        return evicted

    def pop(self, member_id: str) -> M | None:
        """Forget the member ``member_id`` (it resumed, or its grace ended)."""
        member = self._members.get(member_id)
        return None if member is None else self._forget(member)

    def _forget(self, member: M) -> M:
        del self._members[member.id]
        mine = self._by_address[member.address]
        del mine[member.id]
        if not mine:
            del self._by_address[member.address]
        return member
