"""Who is here (issue #13): the presence list, away and idle, touch users.

The list shows everyone in the room with name and colour, including those who never moved,
on desktop and on a phone (Playwright's Pixel 7); the count and the empty-state text agree
with it. Away (pointer left the window, window blurred, tab hidden, finger lifted) and
"reconnecting" come from the server's `presence` messages (docs/protocol.md); idle is each
page's own reckoning: 20 s without a move or a status change.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import async_playwright

from .conftest import App, Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: Seconds without a move or status change before a cursor is drawn faded (people.js).
IDLE_SECONDS = 20


async def pixel7() -> dict[str, object]:
    async with async_playwright() as pw:
        return dict(pw.devices["Pixel 7"])


async def empty_text(app: App) -> tuple[bool, str]:
    """Whether the empty-state block shows, and its text."""
    shown, text = await app.page.evaluate(
        """() => { const e = document.getElementById('empty');
            return [!e.classList.contains('gone'), e.innerText.replace(/\\s+/g, ' ').trim()]; }"""
    )
    return bool(shown), str(text)


async def test_everyone_is_listed_before_they_move(apps: Apps, room: str) -> None:
    ada = await apps.open(room=room, name="Ada")
    assert await ada.page.locator("#peers").text_content() == "1"
    assert (await empty_text(ada))[1].startswith("Nobody else is here yet.")
    bo = await apps.open(room=room, name="Bo")
    cy = await apps.open(room=room, name="Cy")
    # nobody has moved: each page lists all three, itself first, and says so
    for app, others in ((ada, ["Bo", "Cy"]), (bo, ["Ada", "Cy"]), (cy, ["Ada", "Bo"])):
        await app.wait_people([app.name, *others])
        people = await app.people()
        assert [p["me"] for p in people] == [True, False, False], people
        assert "you" in people[0]["note"], people
        assert len({p["color"] for p in people}) == 3, people
        assert await app.page.locator("#peers").text_content() == "3"
        shown, text = await empty_text(app)
        assert shown and text.startswith("2 other people are here, not moving yet."), text
    # one moves: the empty state goes away; one leaves: the list and count follow
    at = await ada.point(0.5, 0.5)
    await bo.wait_cursor(await ada.id(), at, name="Ada")
    assert not (await empty_text(bo))[0]
    await cy.close()
    await bo.wait_people(["Bo", "Ada"])
    assert await bo.page.locator("#peers").text_content() == "2"
    assert_only_loopback(apps.traffic)


async def test_the_phone_shows_count_transport_invite_and_people(apps: Apps, room: str) -> None:
    desk = await apps.open(room=room, name="Desk")
    phone = await apps.open(room=room, name="Phone", device=await pixel7())
    await phone.wait_people(["Phone", "Desk"])
    width, height = (await phone.info())["width"], (await phone.info())["height"]
    assert width < 500, "not a phone-sized viewport"
    for selector in ("#peers", "#status-transport", "#hint-link", "#people-list", "#room"):
        box = await phone.page.locator(selector).bounding_box()
        assert await phone.page.locator(selector).is_visible(), (selector, box)
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (
            selector,
            box,
        )
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (selector, box)
    assert await phone.page.locator("#status-transport").text_content() == "websocket"
    # the list is exposed to screen readers as a labelled list
    names = (
        await phone.page.get_by_role("region", name="In this room")
        .get_by_role("listitem")
        .all_inner_texts()
    )
    assert [n.split("\n")[0].split(" (")[0].strip() for n in names] == ["Phone", "Desk"], names
    await desk.wait_people(["Desk", "Phone"])


async def test_idle_cursors_fade_and_come_back(apps: Apps, room: str) -> None:
    ada = await apps.open(room=room, name="Ada")
    bo = await apps.open(room=room, name="Bo")
    ada_id = await ada.id()
    at = await ada.point(0.4, 0.4)
    await bo.wait_cursor(ada_id, at, name="Ada")
    await bo.wait_status(ada_id, "active")
    await bo.wait_status(ada_id, "idle", within=IDLE_SECONDS + 15)
    at = await ada.point(0.45, 0.42)
    await bo.wait_cursor(ada_id, at, name="Ada")
    await bo.wait_status(ada_id, "active")


async def test_away_when_the_pointer_leaves_the_window_is_blurred_or_the_tab_hidden(
    apps: Apps, room: str
) -> None:
    """Needs the server side of issue #13 (S13): `presence` messages relayed."""
    ada = await apps.open(room=room, name="Ada")
    bo = await apps.open(room=room, name="Bo")
    ada_id = await ada.id()
    await ada.point(0.5, 0.5)
    await bo.wait_status(ada_id, "active")
    # the mouse leaves the window
    await ada.page.mouse.move(-5, -5)
    await bo.wait_status(ada_id, "away")
    await ada.point(0.55, 0.5)
    await bo.wait_status(ada_id, "active")
    # the window loses focus, then gets it back
    await ada.page.evaluate("window.dispatchEvent(new Event('blur'))")
    await bo.wait_status(ada_id, "away")
    await ada.page.evaluate("window.dispatchEvent(new Event('focus'))")
    await bo.wait_status(ada_id, "active")
    # the tab is hidden, then shown
    for state, expected in (("hidden", "away"), ("visible", "active")):
        await ada.page.evaluate(
            """(state) => {
                Object.defineProperty(document, 'visibilityState',
                                      {configurable: true, get: () => state});
                document.dispatchEvent(new Event('visibilitychange'));
            }""",
            state,
        )
        await bo.wait_status(ada_id, expected)
    assert not [line for line in ada.console if "error: unknown type" in line]
    assert not ada.unexpected_errors(), ada.errors


async def test_a_touch_user_is_a_touch_point_and_lifting_the_finger_is_away(
    apps: Apps, room: str
) -> None:
    """Needs the server side of issue #13 (S13): `pointer` relayed, `presence` messages."""
    desk = await apps.open(room=room, name="Desk")
    phone = await apps.open(room=room, name="Phone", device=await pixel7())
    phone_id = await phone.id()
    x, y = await phone.stage_to_client(0.5, 0.5)
    cdp = await phone.context.new_cdp_session(phone.page)
    # a finger goes down and drags; then it is lifted
    await cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
    )
    for step in range(1, 6):
        await cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchMove", "touchPoints": [{"x": x, "y": y + 8 * step}]},
        )
    at = await phone.client_to_stage(x, y + 40)
    await desk.wait_cursor(phone_id, at, name="Phone")
    await desk.wait_for(
        "the phone drawn as a touch point",
        """(id) => {
            const el = document.querySelector('#cursors .cursor[data-id="' + id + '"]');
            return el && el.dataset.pointer === 'touch'
                && getComputedStyle(el.querySelector('.cursor-dot')).display !== 'none'
                && getComputedStyle(el.querySelector('.cursor-arrow')).display === 'none';
        }""",
        phone_id,
    )
    assert "touch" in next(p["note"] for p in await desk.people() if p["id"] == phone_id)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await desk.wait_status(phone_id, "away")


async def test_several_pages_at_once_agree(apps: Apps, room: str) -> None:
    """Five pages joining together: every list ends with the same five people."""
    names = ["P1", "P2", "P3", "P4", "P5"]
    pages = await asyncio.gather(*(apps.open(room=room, name=n) for n in names))
    for app in pages:
        await app.wait_for(
            "five people listed",
            "() => document.querySelectorAll('#people-list .person').length === 5",
        )
        listed = [p["name"] for p in await app.people()]
        assert listed[0] == app.name and sorted(listed) == names, listed
