"""A page left idle for 40 s — several heartbeats — still receives (and sends) moves.

Pages on every transport are open at once and idle together, so the 40 s are paid once;
failures are reported per transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import ALL_TRANSPORTS, HEARTBEAT_DELAY, App, Apps, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

IDLE_SECONDS = 40.0
#: Heartbeats each page must have seen during the idle period (one per HEARTBEAT_DELAY).
MIN_HEARTBEATS = int(IDLE_SECONDS // HEARTBEAT_DELAY) - 1

#: Counts the SockJS heartbeats and closes of the current socket; remembers the socket.
WATCH = """() => {
  const s = window.cursorshare.sock;
  window.__idle = {sock: s, id: window.cursorshare.id, heartbeats: 0, closes: 0};
  s.addEventListener('heartbeat', () => { window.__idle.heartbeats += 1; });
  s.addEventListener('close', () => { window.__idle.closes += 1; });
}"""
REPORT = """() => ({
  heartbeats: window.__idle.heartbeats,
  closes: window.__idle.closes,
  sameSock: window.__idle.sock === window.cursorshare.sock,
  sameId: window.__idle.id === window.cursorshare.id,
  state: window.cursorshare.state,
  transport: window.cursorshare.transport,
})"""


async def test_idle_pages_still_get_moves(apps: Apps, room: str) -> None:
    assert HEARTBEAT_DELAY * 2 < IDLE_SECONDS
    mover = await apps.open(room=room, name="Mover", transports="websocket")
    idle: dict[str, App] = dict(
        zip(
            ALL_TRANSPORTS,
            await asyncio.gather(
                *(apps.open(room=room, name=t, transports=t) for t in ALL_TRANSPORTS)
            ),
            strict=True,
        )
    )
    failures: dict[str, str] = {}
    for transport, app in idle.items():
        info = await app.info()
        if info["sockTransport"] != transport:
            failures[transport] = f"runs on {info['sockTransport']!r}"
        await app.page.evaluate(WATCH)
    assert not failures, failures

    await asyncio.sleep(IDLE_SECONDS)

    reports: dict[str, dict[str, Any]] = {
        t: await app.page.evaluate(REPORT) for t, app in idle.items()
    }

    print(f"after {IDLE_SECONDS:.0f} s idle: {reports}")

    # the mover moves: every idle page sees it
    mover_id = await mover.id()
    at = await mover.point(0.45, 0.55)
    results = await asyncio.gather(
        *(app.wait_cursor(mover_id, at, name="Mover") for app in idle.values()),
        return_exceptions=True,
    )
    for transport, result in zip(idle, results, strict=True):
        if isinstance(result, BaseException):
            failures[transport] = f"did not receive the move after idling: {result}"

    # every idle page moves: the mover sees each of them
    spots = {t: (0.1 + 0.09 * i, 0.15 + 0.08 * i) for i, t in enumerate(idle)}
    sent = await asyncio.gather(*(idle[t].point(*spots[t]) for t in idle))
    ids = [await app.id() for app in idle.values()]
    results = await asyncio.gather(
        *(
            mover.wait_cursor(cursor_id, pos, name=t)
            for t, cursor_id, pos in zip(idle, ids, sent, strict=True)
        ),
        return_exceptions=True,
    )
    for transport, result in zip(idle, results, strict=True):
        if isinstance(result, BaseException):
            failures.setdefault(transport, f"its move after idling never arrived: {result}")

    for transport, report in reports.items():
        problems = []
        if report["heartbeats"] < MIN_HEARTBEATS:
            problems.append(f"{report['heartbeats']} heartbeats < {MIN_HEARTBEATS}")
        if report["closes"] or not report["sameSock"] or not report["sameId"]:
            problems.append(f"the session did not survive the idle period: {report}")
        if problems:
            failures.setdefault(transport, "; ".join(problems))

    assert not failures, "per transport: " + "; ".join(
        f"[{t}] {why}" for t, why in failures.items()
    )
    assert_only_loopback(apps.traffic)
