"""WebSocket blocked for the page: an unforced client falls back to HTTP on its own.

Three ways a network breaks WebSocket, each its own test:

- `refused`: the upgrade is answered and closed at once (a proxy refusing it),
  with Playwright's `page.route_web_socket` never connecting to the server;
- `silent`: the upgrade "succeeds" but nothing ever comes through (an antivirus or a
  middlebox that swallows frames): sockjs-client must time the transport out;
- `unreachable`: the handshake itself fails (every `new WebSocket` is pointed at a closed
  loopback port by an init script): the browser's own error + close 1006.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, WebSocketRoute

from .conftest import HTTP_TRANSPORTS, App, Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: Rewrites every WebSocket to a closed port and records where the page meant to go.
UNREACHABLE = """
(() => {
  const Real = window.WebSocket;
  window.__wsAttempts = [];
  function Blocked(url, protocols) {
    window.__wsAttempts.push(String(url));
    return new Real('ws://127.0.0.1:9/blocked', protocols);
  }
  Blocked.prototype = Real.prototype;
  Object.assign(Blocked, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Blocked;
})();
"""


async def open_blocked(apps: Apps, room: str, how: str, attempts: list[str]) -> App:
    if how == "unreachable":
        return await apps.open(room=room, name="Blocked", init_script=UNREACHABLE)

    async def refuse(ws: WebSocketRoute) -> None:
        attempts.append(ws.url)
        if how == "refused":
            await ws.close(code=1008, reason="WebSocket not allowed here")
        # silent: neither connect to the server nor answer

    async def block(page: Page) -> None:
        await page.route_web_socket(re.compile(r".*"), refuse)

    return await apps.open(room=room, name="Blocked", prepare=block)


@pytest.mark.parametrize("how", ["refused", "silent", "unreachable"])
async def test_falls_back_when_websocket_is_blocked(apps: Apps, room: str, how: str) -> None:
    attempts: list[str] = []
    blocked = await open_blocked(apps, room, how, attempts)
    if how == "unreachable":
        attempts = await blocked.page.evaluate("window.__wsAttempts")
    # the client did try WebSocket first (the server offers it), and was stopped
    assert any("/websocket" in url for url in attempts), (attempts, blocked.diagnostics())

    info = await blocked.info()
    assert info["sockTransport"] in HTTP_TRANSPORTS, (info, blocked.diagnostics())
    assert info["dataTransport"] == info["sockTransport"], info

    free = await apps.open(room=room, name="Free")
    assert (await free.info())["sockTransport"] == "websocket"
    free_id, blocked_id = await free.id(), await blocked.id()

    for fx, fy in ((0.35, 0.45), (0.8, 0.7)):
        at = await free.point(fx, fy)
        await blocked.wait_cursor(free_id, at, name="Free")
    at = await blocked.point(0.15, 0.2)
    await free.wait_cursor(blocked_id, at, name="Blocked")

    assert not blocked.unexpected_errors(), blocked.errors
    assert_only_loopback(apps.traffic)
