"""Nothing leaves loopback: every request of every page (frames, scripts, XHR, websockets,
the iframe transports' pages) goes to our own servers on 127.0.0.1 — no CDN, no font host."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest

from .conftest import ALL_TRANSPORTS, Apps, Server, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_no_request_leaves_loopback(
    apps: Apps, room: str, server: Server, page_server: Server
) -> None:
    mover = await apps.open(room=room, name="Mover")  # unforced: whatever sockjs-client picks
    pages = await asyncio.gather(
        *(apps.open(room=room, name=t, transports=t) for t in ALL_TRANSPORTS),
        apps.open(
            room=room,
            name="cross-origin",
            origin=page_server.url,
            server=server.url,
            transports="iframe-eventsource",
        ),
    )
    mover_id = await mover.id()
    at = await mover.point(0.5, 0.4)
    await asyncio.gather(*(page.wait_cursor(mover_id, at, name="Mover") for page in pages))

    assert_only_loopback(apps.traffic)
    origins = {f"{urlsplit(u).hostname}:{urlsplit(u).port}" for u in apps.traffic.urls()}
    allowed = {f"127.0.0.1:{server.port}", f"127.0.0.1:{page_server.port}"}
    assert origins <= allowed, origins - allowed
    # the client library came from us, for the pages and for the iframe transports alike
    # (the page asks for its versioned name, the iframe page for the plain one)
    client = re.compile(r"/vendor/sockjs\.min(\.[0-9a-f]{10})?\.js")
    vendor = [u for u in apps.traffic.requests if client.fullmatch(urlsplit(u).path)]
    assert any(u.startswith(server.url) for u in vendor), vendor
    assert any(u.startswith(page_server.url) for u in vendor), vendor
    # the iframe transports' page was loaded, from the SockJS server
    assert any(u.startswith(f"{server.url}/ws/iframe") for u in apps.traffic.requests), (
        apps.traffic.requests
    )
