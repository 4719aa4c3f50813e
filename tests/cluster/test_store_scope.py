"""A record's scope (the app's room): a take or seize naming another scope gets nothing and
leaves the record as it was, in one process (`MemoryTtlStore`) and across nodes (Redis); and
an ended record stays ended.

Red team: a resume key presented in another room, on another node, seized the record before
the room was checked; that node became its holder, refused it to the member's own resume
later (it holds it "already"), and the member's node stopped renewing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cursorshare.backplanes.redis.records import RESTORE_RECORDS
from cursorshare.hub import MemoryTtlStore
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster

RECORD = {"id": "m1", "room": "r"}


async def test_a_take_in_another_scope_leaves_the_record_in_one_process() -> None:
    store = MemoryTtlStore()
    await store.put("k", RECORD, 30, "r")
    assert await store.take("k", "other") is None
    assert await store.seize("k", "other") is None
    assert await store.take("k", "r") == RECORD


async def test_a_take_in_another_scope_leaves_the_record_across_nodes(
    make: Callable[..., Any],
) -> None:
    a, _ = await make("a")
    b, _ = await make("b")
    await a.shared_store().put("k", RECORD, 30, "r")
    assert await b.shared_store().take("k", "other") is None
    assert await b.shared_store().take("k", "r") == RECORD


async def test_a_seize_in_another_scope_does_not_make_its_node_the_holder(
    make: Callable[..., Any],
) -> None:
    a, _ = await make("a")
    b, _ = await make("b")
    await a.shared_store().hold("k", RECORD, 30, "r")
    assert await b.shared_store().seize("k", "other") is None
    # Had that seize made b the holder, this one would say b holds it already (None).
    assert await b.shared_store().seize("k", "r") == RECORD
    assert await b.shared_store().seize("k", "r") is None


async def test_an_ended_record_is_never_written_back(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Red team: a bye on another node (`end`) while the holder's link was down; the holder,
    back, renewed or re-wrote its copy, and the key resumed the member after its bye. An
    ended record is a mark for as long as it would have lived, which no write replaces."""
    a, _ = await make("a")
    b, _ = await make("b")
    await a.shared_store().hold("k", RECORD, 30, "r")
    await a.shared_store().hold("marker", RECORD, 30, "r")
    assert await b.shared_store().end("k") == RECORD  # (its farewell to a is lost, say)
    await a.shared_store().hold("k", {**RECORD, "name": "renamed"}, 30, "r")
    await a.shared_store().put("k", RECORD, 30, "r")  # (its session dropped)
    redis = redis_server.client()
    try:
        await redis.delete(a.keys.kept("marker"))
        await redis.client_kill_filter(_type="pubsub")  # a reconnects: renews, restores

        async def renewed() -> bool:
            return bool(await redis.exists(a.keys.kept("marker")))

        await wait_for(renewed, 15, "a's held records written again")
        assert await redis.hgetall(a.keys.kept("k")) == {b"ended": b"1"}
        assert 0 < await redis.pttl(a.keys.kept("k")) <= 60_000
        args = [a.node_id, a.instance, b"{}", "r", 30_000]
        await redis.eval(RESTORE_RECORDS, 1, a.keys.kept("k"), *args)
        assert await redis.hgetall(a.keys.kept("k")) == {b"ended": b"1"}
    finally:
        await redis.aclose()
    assert await b.shared_store().take("k", "r") is None
    assert await b.shared_store().seize("k", "r") is None
