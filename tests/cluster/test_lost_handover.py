"""A member that resumed on another node while its first node's link was down: the hand-over
message (pub/sub: at most once) is lost with the link, so the first node learns it from the
entry the other node wrote.

Red team: the first node, reconnecting, wrote its stale entry (`reconnecting`) over the live
one, so everyone saw a live member reconnecting; at its grace's end it sent a leave and
removed the entry, and the member, live on the other node, was missing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cursorshare.backplanes.redis import RedisBackplane
from cursorshare.backplanes.redis.keys import Entry
from tests.cluster.backplanes import graced_member, join, settle, state
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster


async def reconnect_all(redis_server: RedisServer, *backplanes: RedisBackplane) -> None:
    redis = redis_server.client()
    try:
        before = [b.stats.outages for b in backplanes]
        await redis.client_kill_filter(_type="pubsub")  # a brief outage: they reconnect

        def back() -> bool:
            pairs = zip(backplanes, before, strict=True)
            return all(b.stats.outages > n and b.state == "up" for b, n in pairs)

        await settle(back, within=15)
    finally:
        await redis.aclose()


async def test_a_node_back_leaves_a_member_that_resumed_elsewhere_to_its_new_node(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, got_a = await make("a")
    b, _ = await make("b")
    await graced_member(a, redis_server, 60.0, started=True)
    # u1 resumed on b while a could not hear b's hand-over: b wrote its entry.
    live = Entry("b", b.instance, state("u1", 1.0), 60.0).encode()
    redis = redis_server.client()
    try:
        await redis.hset(a.keys.presence("r"), "u1", live)
        await reconnect_all(redis_server, a)
        await settle(lambda: got_a.handovers == [("r", "u1")], within=15)
        assert await redis.hget(a.keys.presence("r"), "u1") == live
        assert not a.outbox.holds("r", "u1")
    finally:
        await redis.aclose()


async def test_a_node_back_writes_over_the_entry_of_a_dead_process(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """The check leaves an entry only to a live process: one of a gone process (an earlier
    life of this node, a node that died) is overwritten, as before."""
    a, got_a = await make("a")
    await graced_member(a, redis_server, 60.0, started=True)
    dead = Entry("c", "gone", state("u1", 1.0), 60.0).encode()
    redis = redis_server.client()
    try:
        await redis.hset(a.keys.presence("r"), "u1", dead)
        await reconnect_all(redis_server, a)

        async def rewritten() -> bool:
            raw = await redis.hget(a.keys.presence("r"), "u1")
            entry = None if raw is None else Entry.decode(raw)
            return entry is not None and entry.inst == a.instance

        await wait_for(rewritten, 15, "a's entry written over the dead one")
        assert got_a.handovers == []
    finally:
        await redis.aclose()


async def test_a_member_that_just_resumed_here_is_not_let_go(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Red team: the check must not take "I just took it from another node" for "another node
    took it from me". A live member's entry is written over the other node's (stale) one."""
    a, got_a = await make("a")
    b, _ = await make("b")
    await a.join_room("r")
    a.outlive("r", "u1", 60.0)  # resumed here: live, its whole grace
    event, now = join("u1", 2.0)
    a.publish("r", [event], {"u1": now})
    redis = redis_server.client()
    try:

        async def mine() -> bool:
            raw = await redis.hget(a.keys.presence("r"), "u1")
            entry = None if raw is None else Entry.decode(raw)
            return entry is not None and entry.inst == a.instance and entry.state == now

        await wait_for(mine, 15, "a's entry")
        # b's stale write lands after it (b had not yet heard a's hand-over), and a's next
        # write of u1 is one the check once covered: its re-write after a reconnection.
        stale = Entry("b", b.instance, state("u1", 1.0), 60.0).encode()
        await redis.hset(a.keys.presence("r"), "u1", stale)
        await reconnect_all(redis_server, a)
        await wait_for(mine, 15, "a's entry over b's stale one")
        assert got_a.handovers == [] and a.outbox.holds("r", "u1")
    finally:
        await redis.aclose()


async def test_after_a_redis_restart_the_live_member_wins_over_a_dropped_copy(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Red team: after a restart both nodes write into an empty hash; the node with the
    member's live session must keep it, the one with a stale dropped copy let it go."""
    stale_node, got_stale = await make("a")  # (it checks at its reconcile, 3 s after)
    live_node, got_live = await make("b")
    await graced_member(
        stale_node, redis_server, 60.0, started=True
    )  # dropped there, as the hand-over was lost
    await live_node.join_room("r")
    live_node.outlive("r", "u1", 60.0)
    event, now = join("u1", 3.0)
    live_node.publish("r", [event], {"u1": now})
    redis_server.stop()
    await settle(lambda: stale_node.state == "down" and live_node.state == "down")
    await redis_server.start()
    await settle(lambda: got_stale.handovers == [("r", "u1")], within=15)
    redis = redis_server.client()
    try:
        raw = await redis.hget(live_node.keys.presence("r"), "u1")
        entry = None if raw is None else Entry.decode(raw)
        assert entry is not None and entry.inst == live_node.instance
    finally:
        await redis.aclose()
    assert got_live.handovers == [] and live_node.outbox.holds("r", "u1")
