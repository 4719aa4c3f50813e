#!/usr/bin/env python3
"""Save docs/screenshot.png: three users' cursors and the presence list, seen by a fourth page.

    python scripts/screenshot.py                     # starts a server on a free port
    python scripts/screenshot.py --url http://127.0.0.1:8080 --out /tmp/shot.png

Uses Debian's Chromium (/usr/bin/chromium) through Playwright. The browser suite calls
`capture()` too (tests/browser/test_screenshot.py), so the README picture stays current.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Browser, async_playwright

# The repository root, for the server helper the test suites use too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerProcess
from tests.support.webapp import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshot.png"
VIEWPORT = {"width": 1280, "height": 720}
ROOM = "design-review"
OBSERVER = "Margaret"
#: The three users and where their pointers rest, as fractions of the shared stage.
USERS = (("Ada", 0.3, 0.38), ("Grace", 0.63, 0.3), ("Linus", 0.47, 0.66))
#: The shared stage (docs/protocol.md): 16:10, scaled to cover the viewport, centred.
STAGE = (1600, 1000)


def stage_point(fx: float, fy: float) -> tuple[int, int]:
    """The viewport pixel of stage point (fx, fy) in a VIEWPORT-sized window."""
    w, h = VIEWPORT["width"], VIEWPORT["height"]
    scale = max(w / STAGE[0], h / STAGE[1])
    left, top = (w - STAGE[0] * scale) / 2, (h - STAGE[1] * scale) / 2
    return round(left + fx * STAGE[0] * scale), round(top + fy * STAGE[1] * scale)


def sent(x: int, y: int) -> tuple[float, float]:
    """The stage coordinates a page sends for viewport pixel (x, y)."""
    w, h = VIEWPORT["width"], VIEWPORT["height"]
    scale = max(w / STAGE[0], h / STAGE[1])
    left, top = (w - STAGE[0] * scale) / 2, (h - STAGE[1] * scale) / 2
    return round((x - left) / (STAGE[0] * scale), 4), round((y - top) / (STAGE[1] * scale), 4)


async def capture(browser: Browser, base_url: str, out: Path, *, room: str = ROOM) -> list[Any]:
    """Open the observer and three users in `room`, move them, screenshot the observer.

    Returns the observer's cursors (id, name, x, y) as drawn at the time of the shot.
    """
    contexts = []
    try:

        async def open_page(name: str) -> Any:
            context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            contexts.append(context)
            page = await context.new_page()
            await page.goto(f"{base_url}/?{urlencode({'room': room, 'name': name})}")
            await page.wait_for_function(
                "() => window.cursorshare && window.cursorshare.state === 'open'"
                " && window.cursorshare.id !== null",
                timeout=15000,
            )
            return page

        observer = await open_page(OBSERVER)
        users = [await open_page(name) for name, _, _ in USERS]
        for page, (_, fx, fy) in zip(users, USERS, strict=True):
            # a short glide to the resting place, as a person would
            await page.mouse.move(VIEWPORT["width"] * 0.5, VIEWPORT["height"] * 0.5)
            await page.mouse.move(*stage_point(fx, fy), steps=12)
        expected = [[name, *sent(*stage_point(fx, fy))] for name, fx, fy in USERS]
        await observer.wait_for_function(
            """(expected) => expected.every(([name, x, y]) =>
                Array.from(document.querySelectorAll('#cursors .cursor')).some(el =>
                    !el.hidden && el.querySelector('.cursor-name').textContent === name
                    && Math.abs(Number(el.dataset.x) - x) < 2e-4
                    && Math.abs(Number(el.dataset.y) - y) < 2e-4))""",
            arg=expected,
            timeout=10000,
        )
        # let the 90 ms glide transitions finish
        await observer.wait_for_function(
            "() => document.getAnimations().every(a => a.playState !== 'running')",
            timeout=5000,
        )
        await observer.wait_for_timeout(150)
        out.parent.mkdir(parents=True, exist_ok=True)
        await observer.screenshot(path=str(out))
        cursors: list[Any] = await observer.evaluate(
            """() => Array.from(document.querySelectorAll('#cursors .cursor')).map(el => ({
                id: el.dataset.id, name: el.querySelector('.cursor-name').textContent,
                x: Number(el.dataset.x), y: Number(el.dataset.y), hidden: el.hidden,
                color: getComputedStyle(el).getPropertyValue('--cursor-color').trim()}))"""
        )
        return cursors
    finally:
        for context in contexts:
            with contextlib.suppress(Exception):
                await context.close()


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    with ServerProcess.cursorshare() as server:
        yield server.url


async def shoot(url: str, out: Path) -> list[Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            return await capture(browser, url, out)
        finally:
            await browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one on a free port)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to save (default {OUT})")
    args = parser.parse_args()
    if args.url:
        cursors = asyncio.run(shoot(args.url.rstrip("/"), args.out))
    else:
        with local_server() as url:
            cursors = asyncio.run(shoot(url, args.out))
    print(f"saved {args.out}: {', '.join(c['name'] for c in cursors)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
