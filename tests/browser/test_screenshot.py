"""docs/screenshot.png (shown by the README): three users' cursors and the presence list, 1280x720.

The scene is `scripts/screenshot.py`'s `capture()` (which writes docs/screenshot.png when run
by hand); this test renders it from the current app into a scratch file and checks it shows
what it should, so a run of the suite never rewrites a tracked file.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import pytest
from playwright.async_api import Browser

from .conftest import REPO, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot", REPO / "scripts" / "screenshot.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


async def test_screenshot_of_three_cursors(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    script = load_script()
    shot = tmp_path / "screenshot.png"
    cursors = await script.capture(browser, server.url, shot)
    shown = sorted(c["name"] for c in cursors if not c["hidden"])
    assert shown == sorted(name for name, _, _ in script.USERS), cursors
    assert len({c["color"] for c in cursors}) == 3, cursors  # three distinct colours
    assert png_size(shot) == (1280, 720)
    assert shot.stat().st_size > 10_000
