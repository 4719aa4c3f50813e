"""A v2 cursor client on top of tests/support/clients.py: welcome, moves, joins and leaves."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from tests.support.clients import SockJSClient, make_client


class Peer:
    """One v2 user of a room, on one transport."""

    def __init__(self, transport: str, *, server_id: str | None = None) -> None:
        self.transport = transport
        self.client: SockJSClient = make_client(transport)
        if server_id is not None:
            self.client.server_id = server_id
        self.id = ""
        self.welcome: dict[str, Any] = {}
        #: Every message read so far (the `sees_*` checks look here first).
        self.history: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"<Peer {self.transport} {self.id}>"

    async def until(self, predicate: Callable[[Any], bool], within: float = 5.0) -> Any:
        """The first message, read already or arriving within ``within``, that matches."""
        for message in self.history:
            if predicate(message):
                return message
        try:
            message = await self.client.recv_json_until(predicate, within)
        finally:
            self.history += self.client.skipped
        self.history.append(message)
        return message

    async def join(self, base_url: str, room: str, within: float = 5.0) -> Peer:
        await self.client.connect(base_url, query=f"v=2&room={room}", timeout=within)
        self.welcome = await self.client.recv_json_until(
            lambda m: m.get("type") == "welcome", within
        )
        self.id = self.welcome["id"]
        return self

    def users(self) -> dict[str, dict[str, Any]]:
        """Who the welcome said was in the room."""
        return {user["id"]: user for user in self.welcome["users"]}

    async def knows(self, others: list[Peer], within: float = 5.0) -> None:
        """Wait until ``others`` are all known: listed in the welcome or joined since.

        A user who joined a moment ago on another node may miss the welcome (its join is
        still on the way through Redis) but then its join follows.
        """
        expected = {other.id for other in others}
        known = set(self.users()) & expected
        known |= {m["id"] for m in self.history if m.get("type") == "join"} & expected
        deadline = time.monotonic() + within
        while known != expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self!r} knows {known}, not {expected}")
            try:
                message = await self.until(
                    lambda m: m.get("type") == "join" and m.get("id") in expected - known,
                    remaining,
                )
            except TimeoutError:
                raise TimeoutError(f"{self!r} knows {known}, not {expected}") from None
            known.add(message["id"])
        assert set(self.users()) <= expected, (self.users(), expected)

    async def move(self, x: float, y: float) -> None:
        await self.client.send({"type": "move", "x": x, "y": y})

    async def sees_move(
        self, sender: Peer, x: float, y: float, within: float = 5.0
    ) -> dict[str, Any]:
        message: dict[str, Any] = await self.until(
            lambda m: (
                m.get("type") == "move"
                and m.get("sender") == sender.id
                and m.get("x") == x
                and m.get("y") == y
            ),
            within,
        )
        return message

    async def sees_join(self, other: Peer, within: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = await self.until(
            lambda m: m.get("type") == "join" and m.get("id") == other.id, within
        )
        return message

    async def sees_leave(self, other_id: str, within: float = 5.0) -> float:
        """Seconds until the leave of ``other_id`` arrived."""
        start = time.monotonic()
        await self.until(lambda m: m.get("type") == "leave" and m.get("id") == other_id, within)
        return time.monotonic() - start

    async def close(self) -> None:
        """Leave as a closing tab does: a bye (the others see a leave at once), then close."""
        if not self.client.ended:
            with contextlib.suppress(Exception):  # the session may be gone already
                await self.client.send({"type": "bye"})
        await self.client.close()


async def close_all(peers: list[Peer]) -> None:
    for peer in peers:
        with contextlib.suppress(Exception):  # teardown: the others must still be closed
            await peer.close()
