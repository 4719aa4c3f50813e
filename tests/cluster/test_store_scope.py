"""A record's scope (the app's room): a take or seize naming another scope gets nothing and
leaves the record as it was, in one process (`MemoryTtlStore`) and across nodes (Redis).

Red team: a resume key presented in another room, on another node, seized the record before
the room was checked; that node became its holder, refused it to the member's own resume
later (it holds it "already"), and the member's node stopped renewing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cursorshare.hub import MemoryTtlStore

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
