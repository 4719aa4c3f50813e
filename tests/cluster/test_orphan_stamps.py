"""Stamps of when a node's members leave (`<p>:orphans:<room>`) outlive nothing they should.

Red team: a node that stalled past its TTL was stamped by another node's sweep; back, it left
the stamp in place, and `STAMP_ORPHANS` reused it at the node's next stop or death, so its
members left at once, not at the end of their grace (and their keys gave fresh identities).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cursorshare.backplanes.redis import RedisBackplane
from cursorshare.backplanes.redis.keys import Entry
from tests.cluster.backplanes import graced_member
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster

GRACE = 60.0


async def stamp_and_wait_until_gone(
    backplane: RedisBackplane, redis_server: RedisServer, *, stalled: bool
) -> None:
    """Stamp u1 as a sweep would have while ``backplane`` stalled (a deadline long past), and
    wait for the node to remove the stamp."""
    redis = redis_server.client()
    stamps = backplane.keys.orphans("r")
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(stamps, "u1", f"1000:{backplane.instance}")
            if stalled:  # its key expired meanwhile: its beat finds it gone
                pipe.delete(backplane.keys.node(backplane.node_id))
            await pipe.execute()

        async def unstamped() -> bool:
            return not await redis.hexists(stamps, "u1")

        await wait_for(unstamped, 15, "the stale stamp removed")
    finally:
        await redis.aclose()


async def still_listed_after_a_clean_stop(
    backplane: RedisBackplane, make: Callable[..., Any]
) -> None:
    await backplane.stop()  # u1 stays for its grace, stamped now
    newcomer, _ = await make("newcomer")
    assert [r.member for r in await newcomer.join_room("r")] == ["u1"]


async def test_a_node_back_from_a_stall_removes_its_members_stamps(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    await graced_member(a, redis_server, GRACE)
    await stamp_and_wait_until_gone(a, redis_server, stalled=True)
    await still_listed_after_a_clean_stop(a, make)


async def test_a_stamp_made_after_the_node_came_back_goes_at_the_next_refresh(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """A sweep that read the node as dead may stamp after the node re-wrote its presence: the
    periodic refresh (every presence TTL / 4) removes that stamp too."""
    a, _ = await make("a", presence_ttl=4)
    await graced_member(a, redis_server, GRACE)
    await stamp_and_wait_until_gone(a, redis_server, stalled=False)
    await still_listed_after_a_clean_stop(a, make)


async def redis_ms(redis_server: RedisServer) -> int:
    redis = redis_server.client()
    try:
        seconds, micros = await redis.time()
        return int(seconds) * 1000 + int(micros) // 1000
    finally:
        await redis.aclose()


async def test_a_member_whose_grace_ran_out_before_a_clean_stop_is_not_kept(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Red team: a member dropped 6.5 s into an 8 s grace, then its node stopped: the others
    kept it `reconnecting` for 8 s more, while its key gave nothing back. The stop now stamps
    what is left of a started grace; here nothing is, so the member goes with the node."""
    a, _ = await make("a")
    await graced_member(a, redis_server, GRACE)
    dropped_at = await redis_ms(redis_server)
    a.outlive("r", "u1", 1.0, started=True)  # its connection lost: one second left

    async def grace_over() -> bool:
        return await redis_ms(redis_server) > dropped_at + 1500

    await wait_for(grace_over, 15, "the grace over")
    await a.stop()
    newcomer, _ = await make("newcomer")
    assert await newcomer.join_room("r") == []


async def test_a_started_grace_is_written_as_what_is_left_of_it(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Should the node die, the others stamp now + the entry's grace: the entries of members
    whose grace runs are re-written at each refresh with what is left of it."""
    a, _ = await make("a", presence_ttl=4)
    await graced_member(a, redis_server, GRACE)
    a.outlive("r", "u1", GRACE, started=True)
    redis = redis_server.client()
    try:

        async def counting_down() -> bool:
            entry = Entry.decode(await redis.hget(a.keys.presence("r"), "u1") or b"")
            return entry is not None and 0 < entry.grace < GRACE - 1

        await wait_for(counting_down, 15, "the entry's grace counting down")
    finally:
        await redis.aclose()

    a.outlive("r", "u1", GRACE)  # back: its whole grace again
    await still_listed_after_a_clean_stop(a, make)
