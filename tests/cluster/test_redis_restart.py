"""What a restarted Redis lost and the nodes write again (Redis runs without persistence).

Red team: after a Redis restart, the resume records of members already dropped (shown
`reconnecting`) were gone, so their keys gave fresh identities while their old selves stayed
`reconnecting` everywhere; and the colour slots claimed were gone, so newcomers got the
colours of people present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.backplanes import join, settle
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster

RECORD = {"id": "m1", "room": "r"}


async def restart(redis_server: RedisServer, *backplanes: Any) -> None:
    redis_server.stop()
    await settle(lambda: all(b.state == "down" for b in backplanes))
    await redis_server.start()
    await settle(lambda: all(b.state == "up" for b in backplanes), within=15)


async def test_records_put_and_not_taken_are_written_again(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    store = a.shared_store()
    await store.put("dropped", RECORD, 60, "r")
    await store.put("taken", RECORD, 60, "r")
    assert await store.take("taken", "r") == RECORD
    await store.put("discarded", RECORD, 60, "r")
    await store.discard("discarded")
    await restart(redis_server, a)

    redis = redis_server.client()
    try:

        async def restored() -> bool:
            return bool(await redis.exists(a.keys.kept("dropped")))

        await wait_for(restored, 15, "the dropped member's record written again")
        assert 0 < await redis.pttl(a.keys.kept("dropped")) <= 60_000
        assert not await redis.exists(a.keys.kept("taken"), a.keys.kept("discarded"))
    finally:
        await redis.aclose()
    b, _ = await make("b")
    assert await b.shared_store().take("dropped", "r") == RECORD


async def test_a_link_blip_writes_nothing_again(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Without a restart, a record missing after a reconnection was taken or ended by another
    node meanwhile: it must stay gone (a bye is final)."""
    a, _ = await make("a")
    await a.shared_store().put("ended", RECORD, 60, "r")
    await a.shared_store().hold("held", RECORD, 60, "r")
    b, _ = await make("b")
    assert await b.shared_store().end("ended") == RECORD
    redis = redis_server.client()
    try:
        await redis.delete(a.keys.kept("held"))  # a's reconnection writes it again: a marker
        await redis.client_kill_filter(_type="pubsub")  # a brief outage: a reconnects

        async def reconnected() -> bool:  # (held records are written after the restore)
            return bool(await redis.exists(a.keys.kept("held")))

        await wait_for(reconnected, 15, "a's held record written again")
        assert not await redis.exists(a.keys.kept("ended"))
    finally:
        await redis.aclose()


async def test_this_nodes_slot_claims_are_written_again(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    a, _ = await make("a")
    await a.join_room("r")
    slot = await a.claim_slot("r", "u1", 16)
    gone = await a.claim_slot("r", "u2", 16)
    assert slot is not None and gone is not None and slot != gone
    for member in ("u1", "u2"):
        event, now = join(member)
        a.publish("r", [event], {member: now})
    a.publish("r", [], {"u2": None})  # u2 left
    await restart(redis_server, a)

    redis = redis_server.client()
    try:

        async def reclaimed() -> bool:
            return bool(await redis.hexists(a.keys.slots("r"), "u1"))

        await wait_for(reclaimed, 15, "u1's claim written again")
        claim = await redis.hget(a.keys.slots("r"), "u1")
        assert claim is not None and claim.decode().split(":")[0] == str(slot)
        assert not await redis.hexists(a.keys.slots("r"), "u2")
    finally:
        await redis.aclose()
    b, _ = await make("b")
    assert await b.claim_slot("r", "newcomer", 2) != slot  # u1's slot is taken


async def test_a_slot_chosen_while_redis_was_away_is_claimed_once_it_is_back(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Red team: a member who joined during the outage chose its colour alone; with no claim
    written afterwards, a newcomer got the same colour."""
    a, _ = await make("a")
    await a.join_room("r")
    redis_server.stop()
    await settle(lambda: a.state == "down")
    assert await a.claim_slot("r", "u1", 16) is None  # the caller chooses: say slot 5
    assert await a.claim_slot("r", "u1", 16, 5) is None  # and claims its choice as kept
    event, now = join("u1")
    a.publish("r", [event], {"u1": now})
    await redis_server.start()
    await settle(lambda: a.state == "up", within=15)

    redis = redis_server.client()
    try:

        async def claimed() -> bool:
            return bool(await redis.hexists(a.keys.slots("r"), "u1"))

        await wait_for(claimed, 15, "u1's claim written once Redis is back")
        claim = await redis.hget(a.keys.slots("r"), "u1")
        assert claim is not None and claim.decode().split(":")[0] == "5"
    finally:
        await redis.aclose()
