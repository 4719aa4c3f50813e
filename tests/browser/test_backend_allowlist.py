"""The page connects only where it is allowed to (issue #10, finding 6).

`?server=` used to take any backend: a link could point the page at a server its author
controls, which then received the user's name and pointer. Now the page uses its own origin
unless `?server=` names an origin its server allows (`--allowed-backends`, read from
`/config.json`); otherwise it ignores it, says so on the page, and connects to its own origin.

`server` allows no other backend; `page_server` allows `server`. Both are full cursorshare
servers, so a page that obeyed a refused `?server=` would connect there and work: the
tests check where it actually went.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .conftest import App, Apps, Server, assert_only_loopback, free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def note_of(app: App) -> str | None:
    """The visible text of the page's note about a refused `?server=`, None when hidden."""
    note = app.page.locator("#server-note")
    return await note.text_content() if await note.is_visible() else None


def requests_to(apps: Apps, origin: str) -> list[str]:
    port = urlsplit(origin).port
    return [u for u in apps.traffic.urls() if urlsplit(u).port == port]


async def test_a_server_not_allowed_is_ignored_visibly(
    apps: Apps, room: str, server: Server, page_server: Server
) -> None:
    """A page of `server` (no backend allowed) pointed at `page_server`, a working server."""
    app = await apps.open(room=room, name="Ada", server=page_server.url)
    assert await app.page.evaluate("location.origin") == server.url
    assert (await app.page.evaluate("cursorshare.url")).startswith("/ws?"), app.diagnostics()
    assert await app.page.evaluate("cursorshare.refusedServer") == page_server.url
    note = await note_of(app)
    assert note is not None and page_server.url in note and "Ignored ?server=" in note, note
    assert requests_to(apps, page_server.url) == [], "the page talked to the refused server"
    # It works on its own origin: another page of the room sees its cursor.
    other = await apps.open(room=room, name="Bo")
    at = await app.point(0.4, 0.6)
    await other.wait_cursor(await app.id(), at, name="Ada")
    assert not app.unexpected_errors(), app.errors
    assert_only_loopback(apps.traffic)


async def test_a_server_missing_from_a_non_empty_list_is_ignored(
    apps: Apps, room: str, page_server: Server
) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}"
    app = await apps.open(room=room, name="Cy", origin=page_server.url, server=elsewhere)
    assert (await app.page.evaluate("cursorshare.url")).startswith("/ws?")
    assert elsewhere in (await note_of(app) or "")
    assert requests_to(apps, elsewhere) == []


async def test_an_allowed_server_is_used_without_a_note(
    apps: Apps, room: str, server: Server, page_server: Server
) -> None:
    app = await apps.open(room=room, name="Di", origin=page_server.url, server=server.url)
    assert (await app.page.evaluate("cursorshare.url")).startswith(f"{server.url}/ws?")
    assert await app.page.evaluate("cursorshare.refusedServer") is None
    assert await note_of(app) is None
    # The page's own origin served the page and its config, never SockJS.
    own = [urlsplit(u).path for u in requests_to(apps, page_server.url)]
    assert "/config.json" in own and not [p for p in own if p.startswith("/ws")], own


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "ftp://127.0.0.1/", "http://["])
async def test_a_malformed_server_is_ignored_visibly(apps: Apps, room: str, bad: str) -> None:
    app = await apps.open(room=room, name="Eve", server=bad)
    assert (await app.page.evaluate("cursorshare.url")).startswith("/ws?")
    assert "Ignored ?server=" in (await note_of(app) or "")
    assert not app.unexpected_errors(), app.errors


async def test_a_name_cut_at_32_characters_keeps_surrogate_pairs_whole(
    apps: Apps, room: str
) -> None:
    """The page cut names at 32 UTF-16 units: half an emoji became a lone surrogate, which
    the server refuses (and encodeURIComponent throws on)."""
    name = "a" + "\U0001f600" * 40
    app = await apps.open(room=room, name=name)
    assert await app.page.evaluate("cursorshare.name") == "a" + "\U0001f600" * 31
    watcher = await apps.open(room=room, name="Watcher")
    at = await app.point(0.3, 0.3)
    await watcher.wait_cursor(await app.id(), at, name="a" + "\U0001f600" * 31)
