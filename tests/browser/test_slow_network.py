"""A slow first answer: sockjs-client gives the transport up, the app connects again.

sockjs-client's connect timeout is short (300 ms + the /info round trip, per round trip of
the transport; the app sets a floor of 2.5 s, `CONNECT_TIMEOUT_MS` in web/static/connection.js):
on a slow link the session's first frame (`o`) comes too late, the client closes with 2000
"All transports failed" (only one transport is allowed here), and the app must reconnect on
its own (backoff) and then work normally. The first receiving request of each page is held
back 3.5 s to make that happen every time. One held back less than the floor is waited for.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, Route

from .conftest import DISCONNECT_DELAY, Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: sockjs-client transport -> the receiving URL segment of the SockJS protocol.
RECEIVERS = {
    "xhr-streaming": "xhr_streaming",
    "eventsource": "eventsource",
    "htmlfile": "htmlfile",
    "xhr-polling": "xhr",
    "jsonp-polling": "jsonp",
}
HOLD_SECONDS = 3.5


@pytest.mark.parametrize("transport", list(RECEIVERS))
async def test_reconnects_after_slow_first_answer(apps: Apps, room: str, transport: str) -> None:
    held: list[str] = []

    async def hold_first(route: Route) -> None:
        if not held:
            held.append(route.request.url)
            await asyncio.sleep(HOLD_SECONDS)
        await route.continue_()

    async def slow_link(page: Page) -> None:
        pattern = re.compile(rf"/ws/[^/]+/[^/]+/{RECEIVERS[transport]}(\?|$)")
        await page.route(pattern, hold_first)

    slow = await apps.open(room=room, name="Slow", transports=transport, prepare=slow_link)
    assert held, "the first receiving request was not seen"
    assert any("All transports failed" in line for line in slow.console), slow.diagnostics()
    info = await slow.info()
    assert info["sockTransport"] == transport, info

    other = await apps.open(room=room, name="Other", transports="websocket")
    slow_id, other_id = await slow.id(), await other.id()
    at = await other.point(0.3, 0.6)
    await slow.wait_cursor(other_id, at, name="Other")
    at = await slow.point(0.7, 0.2)
    await other.wait_cursor(slow_id, at, name="Slow")
    # a first session the server did open (the held request reached it late) is abandoned:
    # it times out and leaves; in the end Other sees exactly one cursor, the live one
    try:
        await other.page.wait_for_function(
            """(id) => Array.from(document.querySelectorAll('#cursors .cursor'))
                .map(el => el.dataset.id).join() === id""",
            arg=slow_id,
            timeout=(DISCONNECT_DELAY + 4) * 1000,
        )
    except Exception as exc:
        raise AssertionError(f"ghost cursors left: {await other.cursors()}") from exc
    assert not slow.unexpected_errors(), slow.errors
    assert_only_loopback(apps.traffic)


#: A first answer this late is within the app's connect timeout (web/static/connection.js,
#: `CONNECT_TIMEOUT_MS`), and past sockjs-client's own guess for jsonp-polling (300 ms plus the
#: /info round trip, one round trip): a busy machine's first answer.
A_LITTLE_LATE_SECONDS = 1.2


async def test_a_first_answer_a_little_late_is_waited_for(apps: Apps, room: str) -> None:
    """No reconnect, so the others see no member join and then leave (the dropped first
    session's, a disconnect delay later)."""
    held: list[str] = []

    async def hold_first(route: Route) -> None:
        if not held:
            held.append(route.request.url)
            await asyncio.sleep(A_LITTLE_LATE_SECONDS)
        await route.continue_()

    async def a_little_slow(page: Page) -> None:
        await page.route(re.compile(r"/ws/[^/]+/[^/]+/jsonp(\?|$)"), hold_first)

    other = await apps.open(room=room, name="Other", transports="websocket")
    late = await apps.open(
        room=room, name="Late", transports="jsonp-polling", prepare=a_little_slow
    )
    assert held, "the first receiving request was not seen"
    assert not any("All transports failed" in line for line in late.console), late.diagnostics()
    assert await late.page.evaluate("cursorshare.connects") == 1, late.diagnostics()
    late_id = await late.id()
    at = await late.point(0.4, 0.4)
    await other.wait_cursor(late_id, at, name="Late")
    assert [c["id"] for c in await other.cursors()] == [late_id]
