"""Pages on different transports share one room."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MIXED = {"Ada": "websocket", "Bo": "xhr-polling", "Cy": "eventsource"}


async def test_mixed_transports_see_each_other(apps: Apps, room: str) -> None:
    pages = await asyncio.gather(
        *(apps.open(room=room, name=n, transports=t) for n, t in MIXED.items())
    )
    for app, transport in zip(pages, MIXED.values(), strict=True):
        info = await app.info()
        assert info["sockTransport"] == transport, (app.name, info)
        assert info["dataTransport"] == transport, (app.name, info)

    ids = [await app.id() for app in pages]
    assert len(set(ids)) == 3, ids
    spots = ((0.2, 0.25), (0.55, 0.7), (0.85, 0.4))
    # each in turn moves; both others see it, whatever transport either side is on
    for mover, mover_id, (fx, fy) in zip(pages, ids, spots, strict=True):
        at = await mover.point(fx, fy)
        others = [app for app in pages if app is not mover]
        await asyncio.gather(*(app.wait_cursor(mover_id, at, name=mover.name) for app in others))
    # and at the end every page shows exactly the other two
    for app, own in zip(pages, ids, strict=True):
        shown = {c["id"] for c in await app.cursors() if not c["hidden"]}
        assert shown == set(ids) - {own}, (app.name, shown)
        assert not app.unexpected_errors(), (app.name, app.errors)

    assert_only_loopback(apps.traffic)
