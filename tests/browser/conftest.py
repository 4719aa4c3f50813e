"""Fixtures of the real-browser suite: the server, Debian's Chromium, pages of the web app.

- `server`: `python -m cursorshare serve` in a subprocess on a free loopback port, with a short
  disconnect delay (so a closed page's cursor goes away quickly) and a heartbeat delay well
  inside the 40-second idle test. `page_server` is a second instance on another port: a
  second origin that serves the same static app, for the cross-origin tests.
- `browser`: one Chromium for the whole session (`/usr/bin/chromium`, headless; Playwright
  cannot download its own browsers here).
- `apps`: opens pages of the app, one browser context each (own cookies, storage and socket
  pool, like separate people), records every request and websocket of every page, and closes
  them all at teardown.

The page object and the server process live in tests/support/webapp.py; the names are
re-exported here for the test modules.

The async fixtures and tests run on one session-wide event loop (the browser lives there).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.support.server import free_port
from tests.support.webapp import (
    ALL_TRANSPORTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DISCONNECT_DELAY,
    HEARTBEAT_DELAY,
    HTTP_TRANSPORTS,
    REPO,
    App,
    Apps,
    Server,
    assert_only_loopback,
    start_server,
    stop_server,
)

__all__ = [
    "ALL_TRANSPORTS",
    "DISCONNECT_DELAY",
    "HEARTBEAT_DELAY",
    "HTTP_TRANSPORTS",
    "REPO",
    "App",
    "Apps",
    "Server",
    "assert_only_loopback",
    "free_port",
    "start_server",
    "stop_server",
]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The SockJS server every page talks to."""
    srv = start_server(tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory, server: Server) -> Iterator[Server]:
    """A second origin (another port) serving the same static app, for cross-origin pages:
    its pages may use `server` as their backend (`?server=`), and no other."""
    srv = start_server(
        tmp_path_factory.mktemp("page-server") / "server.log", "--allowed-backends", server.url
    )
    yield srv
    stop_server(srv)


# ---- the browser ---------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def apps(browser: Browser, server: Server) -> AsyncIterator[Apps]:
    opened = Apps(browser, server)
    yield opened
    await opened.close_all()


_rooms = itertools.count(1)


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    """A room of this test alone (1-64 letters, digits, `-`, `_`, `.`)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:48]
    return f"{base}-{next(_rooms)}"


class Servers:
    """Servers of one test: started with extra options, restartable on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: list[Server] = []

    def start(self, *extra: str, port: int | None = None) -> Server:
        srv = start_server(self.tmp / f"server-{port or len(self.running)}.log", *extra, port=port)
        self.running.append(srv)
        return srv

    def stop(self, srv: Server) -> None:
        stop_server(srv)

    def restart(self, srv: Server, *extra: str) -> Server:
        """Stop `srv` and start it again on its port (its pages reconnect there)."""
        stop_server(srv)
        return self.start(*extra, port=srv.port)

    def stop_all(self) -> None:
        for srv in self.running:
            stop_server(srv)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    yield started
    started.stop_all()
    for log in sorted(tmp_path.glob("server-*.log")):  # shown by pytest when the test failed
        print(f"---- {log.name} ----\n{log.read_text(errors='replace')}")
