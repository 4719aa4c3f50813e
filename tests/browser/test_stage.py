"""Cursors on the shared stage (issue #13): same spot whatever the window shape, readable at
the edges, edge markers for cursors outside a window's view.

The expected pixel positions come from the scheme of docs/protocol.md ("Where a cursor is"),
computed by the page object (`App.stage_box`), not by the page.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import App, Apps

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

WIDE = {"width": 1280, "height": 720}
SQUARE = {"width": 700, "height": 700}
TALL = {"width": 420, "height": 860}


async def cursor_box(app: App, cursor_id: str) -> dict[str, Any]:
    """The drawn cursor: its tip (the translated point), label box, edge flag; the viewport."""
    box: dict[str, Any] = await app.page.evaluate(
        """(id) => {
            const el = document.querySelector('#cursors .cursor[data-id="' + id + '"]');
            const m = new DOMMatrixReadOnly(getComputedStyle(el).transform);
            const label = el.querySelector('.cursor-name').getBoundingClientRect();
            return {x: m.m41, y: m.m42, offscreen: el.hasAttribute('data-offscreen'),
                    label: {left: label.left, top: label.top, right: label.right,
                            bottom: label.bottom},
                    w: innerWidth, h: innerHeight};
        }""",
        cursor_id,
    )
    return box


async def settled(app: App) -> None:
    await app.wait_for(
        "cursor transitions finished",
        "() => document.getAnimations().every(a => a.playState !== 'running')",
    )


async def test_a_cursor_keeps_its_spot_of_the_stage_in_windows_of_any_shape(
    apps: Apps, room: str
) -> None:
    mover = await apps.open(room=room, name="Mover", viewport=WIDE)
    watchers = [
        await apps.open(room=room, name=f"W{i}", viewport=v) for i, v in enumerate((SQUARE, TALL))
    ]
    mover_id = await mover.id()
    for fx, fy in ((0.5, 0.5), (0.45, 0.3), (0.55, 0.7)):  # inside every window's view
        at = await mover.point(fx, fy)
        for app in watchers:
            await app.wait_cursor(mover_id, at, name="Mover")
            await settled(app)
            drawn = await cursor_box(app, mover_id)
            want = await app.stage_to_client(*at)
            assert abs(drawn["x"] - want[0]) <= 1 and abs(drawn["y"] - want[1]) <= 1, (
                app.name,
                drawn,
                want,
            )
            assert not drawn["offscreen"]


async def test_labels_stay_inside_the_window_at_its_edges(apps: Apps, room: str) -> None:
    mover = await apps.open(room=room, name="A rather long name here", viewport=SQUARE)
    watcher = await apps.open(room=room, name="Watcher", viewport=SQUARE)
    mover_id = await mover.id()
    w, h = SQUARE["width"], SQUARE["height"]
    # the bottom-right, top-right (just under the bar), bottom-left corners; the bottom edge
    for x, y in ((w - 2, h - 2), (w - 2, 70), (2, h - 2), (w // 2, h - 2)):
        await mover.page.mouse.move(x, y, steps=8)
        at = await mover.client_to_stage(x, y)
        await watcher.wait_cursor(mover_id, at)
        await settled(watcher)
        drawn = await cursor_box(watcher, mover_id)
        label = drawn["label"]
        assert label["left"] >= 0 and label["top"] >= 0, drawn
        assert label["right"] <= drawn["w"] and label["bottom"] <= drawn["h"], drawn


async def test_a_cursor_outside_the_view_is_an_edge_marker(apps: Apps, room: str) -> None:
    mover = await apps.open(room=room, name="Wide", viewport=WIDE)
    tall = await apps.open(room=room, name="Tall", viewport=TALL)
    mover_id = await mover.id()
    t_left, _, t_width, _ = await tall.stage_box()
    # a spot of the stage left of what the tall window shows
    assert t_left + 0.08 * t_width < 0
    at = await mover.point(0.08, 0.5)
    await tall.wait_cursor(mover_id, at, name="Wide")
    await settled(tall)
    drawn = await cursor_box(tall, mover_id)
    assert drawn["offscreen"], drawn
    assert 0 <= drawn["x"] <= 30, drawn  # at the left edge
    label = drawn["label"]
    assert label["left"] >= 0 and label["right"] <= drawn["w"], drawn
    # back into view: an ordinary cursor again
    at = await mover.point(0.5, 0.5)
    await tall.wait_cursor(mover_id, at, name="Wide")
    assert not (await cursor_box(tall, mover_id))["offscreen"]
