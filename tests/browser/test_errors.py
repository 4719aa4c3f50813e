"""Errors people can act on (issue #13): what the page does after each kind of close.

- permanent (4001 invalid room, 4003 origin refused): the reason is shown, nothing is retried;
- 3010 too many sessions: the reason is shown, no automatic retry, "retry now" offered;
- transient (the server goes away): backoff with a visible countdown and "retry now", and the
  live region says "lost" once and "connected" once, however long the outage.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, WebSocketRoute

from .conftest import App, Apps, Servers

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def wait_state(app: App, state: str, within: float = 15.0) -> None:
    await app.wait_for(f"state {state}", "(s) => cursorshare.state === s", state, within)


async def problem(app: App) -> str | None:
    banner = app.page.locator("#problem")
    return await banner.text_content() if await banner.is_visible() else None


async def test_an_invalid_room_is_shown_and_not_retried(apps: Apps) -> None:
    app = await apps.open(room="design review!", name="Ada", transports="websocket", wait=False)
    await wait_state(app, "failed")
    text = await problem(app)
    assert text is not None and "not valid" in text and "4001" in text, text
    assert await app.page.evaluate("cursorshare.closeCode") == 4001
    assert not await app.page.evaluate("cursorshare.retryPending")
    assert await app.page.evaluate("cursorshare.connects") == 1
    assert not await app.page.locator("#retry-now").is_visible()
    # the live region said it, once
    assert await app.page.evaluate("cursorshare.announcements") == [
        await app.page.evaluate("cursorshare.announcements[0]")
    ]
    assert "not valid" in (await app.page.locator("#announcer").text_content() or "")
    # and 'online' (which cuts a backoff short) does not bring it back either
    await app.page.evaluate("window.dispatchEvent(new Event('online'))")
    assert await app.page.evaluate("cursorshare.connects") == 1


async def test_a_refused_origin_is_shown_and_not_retried(apps: Apps, room: str) -> None:
    """The server's close 4003 on the websocket (the page's handling of it)."""

    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=4003, reason="Origin not allowed")

    async def block(page: Page) -> None:
        await page.route_web_socket(re.compile(r".*"), refuse)

    app = await apps.open(room=room, name="Ada", transports="websocket", prepare=block, wait=False)
    await wait_state(app, "failed")
    text = await problem(app)
    assert text is not None and "does not accept" in text and "4003" in text, text
    assert not await app.page.evaluate("cursorshare.retryPending")
    assert not await app.page.locator("#retry-now").is_visible()


async def test_too_many_sessions_waits_for_retry_now(apps: Apps, servers: Servers) -> None:
    srv = servers.start("--max-sessions", "1")
    first = await apps.open(room="full", name="First", origin=srv.url, transports="websocket")
    second = await apps.open(
        room="full", name="Second", origin=srv.url, transports="websocket", wait=False
    )
    await wait_state(second, "held")
    text = await problem(second)
    assert text is not None and "too many sessions" in text and "3010" in text, text
    assert not await second.page.evaluate("cursorshare.retryPending")
    assert await second.page.locator("#retry-now").is_visible()
    await first.close()
    # the first session is gone once its page is: then "retry now" gets in
    await second.wait_for(
        "a retry after the first page left gets in",
        """async () => {
            if (cursorshare.state === 'open' && cursorshare.id) return true;
            if (cursorshare.state === 'held') document.getElementById('retry-now').click();
            return false;
        }""",
        within=20,
    )
    assert await problem(second) is None
    assert not await second.page.locator("#retry-now").is_visible()


#: Records every change of the text of every live region of the page.
LIVE_SPY = """
(() => {
  window.__spoken = [];
  const watch = () => {
    const observer = new MutationObserver(() => {
      document.querySelectorAll('[aria-live], [role=status], [role=alert], [role=log]')
        .forEach(el => {
          const text = el.textContent.trim();
          if (text && el.__last !== text) { el.__last = text; window.__spoken.push(text); }
        });
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                      attributes: true});
  };
  document.addEventListener('DOMContentLoaded', watch);
})();
"""


async def test_an_outage_backs_off_visibly_and_is_announced_once(
    apps: Apps, servers: Servers
) -> None:
    srv = servers.start()
    app = await apps.open(room="outage", name="Ada", origin=srv.url, init_script=LIVE_SPY)
    before = len(await app.page.evaluate("window.__spoken"))
    servers.stop(srv)
    # a countdown and "retry now" while the server is away; several attempts fail
    await wait_state(app, "retrying")
    assert await app.page.locator("#retry-now").is_visible()
    assert re.search(r"retrying in \d+ s", await app.page.locator("#status-text").inner_text())
    await app.wait_for("three attempts", "() => cursorshare.connects >= 3", within=30)
    assert await app.page.locator("#status").get_attribute("role") is None  # not a live region
    srv = servers.restart(srv)
    # "retry now" connects at once, whatever the backoff says
    await app.wait_for(
        "back after retry now",
        """() => {
            if (cursorshare.state === 'open' && cursorshare.id) return true;
            if (cursorshare.state === 'retrying') document.getElementById('retry-now').click();
            return false;
        }""",
        within=20,
    )
    spoken = (await app.page.evaluate("window.__spoken"))[before:]
    assert len(spoken) == 2, spoken
    assert "lost" in spoken[0] and "Connected" in spoken[1], spoken
    assert not await app.page.locator("#retry-now").is_visible()
