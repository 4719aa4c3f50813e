"""Three pages of the app, forced onto one sockjs-client transport, share their cursors.

One test per transport (test id = transport name): every page really runs on the forced
transport, a move in one page shows up in the other two and follows the mouse, and a closed
page's cursor goes away within the disconnect delay plus a margin.
"""

from __future__ import annotations

import asyncio

import pytest

from .conftest import ALL_TRANSPORTS, DISCONNECT_DELAY, Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: Where the mover points after its first move, as fractions of its viewport.
PATH = ((0.25, 0.3), (0.7, 0.6), (0.4, 0.85), (0.9, 0.15))
#: Seconds past the disconnect delay a closed page's cursor may linger.
LEAVE_MARGIN = 4.0


@pytest.mark.parametrize("transport", ALL_TRANSPORTS)
async def test_three_pages_share_cursors(apps: Apps, room: str, transport: str) -> None:
    ada, bo, cy = await asyncio.gather(
        *(apps.open(room=room, name=n, transports=transport) for n in ("Ada", "Bo", "Cy"))
    )
    for app in (ada, bo, cy):
        info = await app.info()
        assert info["sockTransport"] == transport, (info, app.diagnostics())
        assert info["dataTransport"] == transport, info
        assert info["transport"] == transport, info
        assert info["dataState"] == "open", info

    ada_id = await ada.id()
    watchers = (bo, cy)
    # joined but not moved yet: in the DOM of the others, hidden
    for app in watchers:
        await app.page.locator(f'#cursors .cursor[data-id="{ada_id}"]').wait_for(
            state="attached", timeout=5000
        )
        assert [c["hidden"] for c in await app.cursors() if c["id"] == ada_id] == [True]

    for fx, fy in PATH:
        at = await ada.point(fx, fy)
        await asyncio.gather(*(app.wait_cursor(ada_id, at, name="Ada") for app in watchers))

    for app in (ada, bo, cy):
        assert not app.unexpected_errors(), f"{app.name}: page errors {app.errors}"

    # Ada's own cursor is never drawn on her page
    assert all(c["id"] != ada_id for c in await ada.cursors())

    await ada.close()
    took = await asyncio.gather(
        *(app.wait_cursor_gone(ada_id, DISCONNECT_DELAY + LEAVE_MARGIN) for app in watchers)
    )
    print(f"{transport}: closed page's cursor gone after {max(took):.2f} s")
    assert max(took) <= DISCONNECT_DELAY + LEAVE_MARGIN

    # the two left behind still see each other
    bo_id = await bo.id()
    at = await bo.point(0.5, 0.5)
    await cy.wait_cursor(bo_id, at, name="Bo")

    assert_only_loopback(apps.traffic)
