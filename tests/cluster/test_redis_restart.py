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

from cursorshare.backplanes.redis.keys import KeyLayout
from cursorshare.cursors import identity
from cursorshare.hub import StoreUnavailable
from tests.cluster.backplanes import join, settle
from tests.cluster.procs import Cluster, Node, RedisServer, wait_for
from tests.cluster.test_presence import Tab, close_all

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
        assert await redis.hgetall(a.keys.kept("ended")) == {b"ended": b"1"}  # no record
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


async def test_a_put_while_the_link_is_down_is_written_once_it_is_back(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Also over the record this process held (the member's, while its session lived)."""
    a, _ = await make("a")
    store = a.shared_store()
    await store.hold("was-held", RECORD, 60, "r")
    redis_server.stop()
    await settle(lambda: a.state == "down")
    for key in ("was-held", "new"):
        with pytest.raises(StoreUnavailable):
            await store.put(key, RECORD, 60, "r")
    await redis_server.start()
    await settle(lambda: a.state == "up", within=15)
    redis = redis_server.client()
    try:

        async def written() -> bool:
            fields = [await redis.hgetall(a.keys.kept(key)) for key in ("was-held", "new")]
            return all(f.get(b"record") and b"node" not in f for f in fields)

        await wait_for(written, 15, "both records written, held by nobody")
    finally:
        await redis.aclose()
    b, _ = await make("b")
    assert await b.shared_store().take("was-held", "r") == RECORD
    assert await b.shared_store().take("new", "r") == RECORD


async def test_a_member_dropped_while_redis_was_away_resumes_here_and_elsewhere(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """Red team: a member whose session dropped while Redis was away could never resume,
    even on its own node, and its old self stayed `reconnecting` beside its new identity."""
    a, b = await cluster.start_nodes(2)
    tabs: list[Tab] = []
    try:
        watcher = await Tab().open(a.ws_url, "away")
        ada = await Tab().open(a.ws_url, "away")
        bob = await Tab("xhr-streaming").open(a.ws_url, "away")
        tabs += [watcher, ada, bob]
        for member in (ada, bob):
            await watcher.knows(member.id)
        redis_server.stop()
        await wait_for(lambda: backplane_is(a, "down"), 15, "a's backplane down")
        for member in (ada, bob):
            await member.close()
            await watcher.told(type="presence", id=member.id, status="reconnecting")

        ada_again = await Tab().open(a.ws_url, "away", ada.welcome["resume"])  # Redis away
        tabs.append(ada_again)
        assert (ada_again.welcome["resumed"], ada_again.id) == (True, ada.id)

        await redis_server.start()
        for node in (a, b):
            await wait_for(lambda node=node: backplane_is(node, "up"), 15, "backplane up")
        record = KeyLayout().kept(identity.store_key(bob.welcome["resume"]))
        redis = redis_server.client()
        try:

            async def written() -> bool:  # (a writes it once it is back)
                return bool(await redis.hexists(record, "record"))

            await wait_for(written, 15, "bob's record written")
        finally:
            await redis.aclose()
        bob_again = await Tab().open(b.ws_url, "away", bob.welcome["resume"])
        tabs.append(bob_again)
        assert (bob_again.welcome["resumed"], bob_again.id) == (True, bob.id)
        await watcher.told(type="presence", id=bob.id, status="active")
    finally:
        await close_all(tabs)


async def backplane_is(node: Node, state: str) -> bool:
    return bool((await node.healthz())["backplane"] == state)
