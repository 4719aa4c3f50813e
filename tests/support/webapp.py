"""The browser suite's page object and servers (issue #12: shared test clients live here).

- `Server`, `start_server`, `stop_server`: `python -m cursorshare serve` in a subprocess on a
  loopback port (a fixed one to restart a server where its pages expect it).
- `App`: one page of the web app in its own browser context, with what a test asks of it:
  state, moves on the shared stage, cursors, the presence list, the live region.
- `Apps`: opens pages (optionally as a phone), records every request and websocket.

The fixtures that use them are in tests/browser/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    WebSocket,
)

from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--disable-breakpad",
]

#: Seconds a session outlives its last receiving request (server default: 5).
DISCONNECT_DELAY = 2.0
#: Seconds between heartbeat frames (server default: 25): several fall in a 40 s idle period.
HEARTBEAT_DELAY = 10.0

#: Every sockjs-client transport Chromium can be asked for (xdr-* are IE-only).
ALL_TRANSPORTS = (
    "websocket",
    "xhr-streaming",
    "eventsource",
    "iframe-eventsource",
    "htmlfile",
    "iframe-htmlfile",
    "xhr-polling",
    "iframe-xhr-polling",
    "jsonp-polling",
)
#: Transports sockjs-client may fall back to over plain HTTP when WebSocket is blocked.
HTTP_TRANSPORTS = frozenset(ALL_TRANSPORTS) - {"websocket"}

VIEWPORT = {"width": 800, "height": 600}

#: A known sockjs-client 1.6.1 defect, not ours. `JsonpReceiver._cleanup()`
#: (lib/transport/receiver/jsonp.js) deletes the global callback `_jp.<id>` when the receiver is
#: aborted, but a `<script>` already being fetched cannot be cancelled (removing the element
#: does not stop it). When sockjs-client gives a jsonp-polling connection up early (its connect
#: timeout is computed from the /info round trip: 300 ms + rtt for one round trip, which a
#: loaded machine overshoots) and opens a new session, the first poll's answer still arrives,
#: calls the deleted callback and throws "TypeError: _jp.<id> is not a function" on the page.
#: The client has moved on to a new session by then; the tests tolerate exactly that error.
ORPHANED_JSONP_CALLBACK = re.compile(
    r"^_jp\.a[0-9a-z]+ is not a function @ TypeError: .*\n\s+at https?://[^ ]+/jsonp\?"
)
#: The shared stage's aspect (docs/protocol.md, "Where a cursor is").
STAGE = (1600, 1000)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


# ---- the server ----------------------------------------------------------------------------


#: A `python -m cursorshare serve` process (tests/support/server.py): ``url``, ``port``.
Server = ServerProcess


def start_server(log: Path, *extra: str, port: int | None = None) -> Server:
    """The server with the suite's delays on ``port`` (default: a free one), once /healthz
    answers; a fixed port restarts a server where its pages expect it."""
    delays = ("--disconnect-delay", str(DISCONNECT_DELAY))
    delays += ("--heartbeat-delay", str(HEARTBEAT_DELAY))
    return ServerProcess.cursorshare(*delays, *extra, port=port, log=log).start()


def stop_server(server: Server) -> None:
    server.stop()


# ---- pages of the app ----------------------------------------------------------------------


@dataclass
class Traffic:
    """Every URL any page asked for: HTTP requests (frames, scripts, XHR, ...) and websockets."""

    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def urls(self) -> list[str]:
        return self.requests + self.websockets

    def off_loopback(self) -> list[str]:
        out = []
        for url in self.urls():
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOOPBACK_HOSTS:
                out.append(url)
        return out


def assert_only_loopback(traffic: Traffic) -> None:
    assert traffic.requests, "no request was recorded at all"
    offending = traffic.off_loopback()
    assert not offending, f"requests left loopback: {offending}"


@dataclass
class App:
    """One page of the web app in its own browser context."""

    name: str
    context: BrowserContext
    page: Page
    url: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    # -- state --

    async def wait_open(self, within: float = 15.0) -> None:
        try:
            await self.page.wait_for_function(
                "() => window.cursorshare && window.cursorshare.state === 'open'"
                " && window.cursorshare.id !== null",
                timeout=within * 1000,
            )
        except Exception as exc:
            raise AssertionError(f"{self.name}: never opened; {self.diagnostics()}") from exc

    async def info(self) -> dict[str, Any]:
        info: dict[str, Any] = await self.page.evaluate(
            """() => ({
                state: cursorshare.state,
                id: cursorshare.id,
                transport: cursorshare.transport,
                sockTransport: cursorshare.sock ? cursorshare.sock.transport : null,
                dataState: document.getElementById('status').getAttribute('data-state'),
                dataTransport: document.getElementById('status').getAttribute('data-transport'),
                width: window.innerWidth,
                height: window.innerHeight,
            })"""
        )
        return info

    async def id(self) -> str:
        info = await self.info()
        assert info["id"], f"{self.name} has no id: {info}"
        return str(info["id"])

    def unexpected_errors(self) -> list[str]:
        """Uncaught errors of the page, but for the known sockjs-client JSONP one."""
        return [e for e in self.errors if not ORPHANED_JSONP_CALLBACK.match(e)]

    def diagnostics(self) -> str:
        return f"url={self.url} console={self.console[-15:]} page errors={self.errors[-5:]}"

    # -- moves --

    async def point(self, fx: float, fy: float, *, steps: int = 8) -> tuple[float, float]:
        """Move the mouse to (fx, fy) of the shared stage in steps; the stage coords sent.

        (fx, fy) must be in this page's view of the stage (see `stage_box`).
        """
        x, y = await self.stage_to_client(fx, fy)
        await self.page.mouse.move(x, y, steps=steps)
        return await self.client_to_stage(x, y)

    async def stage_box(self) -> tuple[float, float, float, float]:
        """Where the stage lies in this viewport: left, top, width, height (CSS px).

        The scheme of docs/protocol.md, computed here independently of the page: a 16:10
        stage scaled uniformly to cover the viewport, centred.
        """
        info = await self.info()
        w, h = info["width"], info["height"]
        scale = max(w / STAGE[0], h / STAGE[1])
        width, height = STAGE[0] * scale, STAGE[1] * scale
        return (w - width) / 2, (h - height) / 2, width, height

    async def stage_to_client(self, fx: float, fy: float) -> tuple[int, int]:
        left, top, width, height = await self.stage_box()
        return round(left + fx * width), round(top + fy * height)

    async def client_to_stage(self, x: float, y: float) -> tuple[float, float]:
        left, top, width, height = await self.stage_box()
        clamp = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return round(clamp((x - left) / width), 4), round(clamp((y - top) / height), 4)

    async def people(self) -> list[dict[str, Any]]:
        """The presence list as shown: name, note (you/away/idle/touch ...), status, colour."""
        people: list[dict[str, Any]] = await self.page.evaluate(
            """() => Array.from(document.querySelectorAll('#people-list .person')).map(li => ({
                id: li.dataset.id || null, me: li.classList.contains('me'),
                name: li.querySelector('.person-name').textContent,
                note: li.querySelector('.person-note').textContent,
                status: li.dataset.status,
                color: getComputedStyle(li.querySelector('.swatch')).backgroundColor,
                visible: li.checkVisibility(),
            }))"""
        )
        return people

    async def wait_for(self, what: str, js: str, arg: Any = None, within: float = 10.0) -> None:
        """Wait until the page function `js(arg)` is true; fail saying `what`."""
        try:
            await self.page.wait_for_function(js, arg=arg, timeout=within * 1000, polling=50)
        except Exception as exc:
            raise AssertionError(
                f"{self.name}: not within {within}s: {what}; people={await self.people()};"
                f" cursors={await self.cursors()}; {self.diagnostics()}"
            ) from exc

    async def wait_people(self, names: list[str], within: float = 10.0) -> None:
        """Wait until the presence list shows exactly `names` (own entry first)."""
        await self.wait_for(
            f"the presence list shows {names}",
            """(names) => JSON.stringify(Array.from(
                document.querySelectorAll('#people-list .person-name'), e => e.textContent))
                === JSON.stringify(names)""",
            names,
            within,
        )

    async def wait_status(self, user_id: str, status: str, within: float = 10.0) -> None:
        """Wait until the cursor and list entry of `user_id` show `status`."""
        await self.wait_for(
            f"{user_id} shown {status}",
            """([id, status]) => {
                const li = document.querySelector(
                    '#people-list .person[data-id="' + CSS.escape(id) + '"]');
                const el = document.querySelector(
                    '#cursors .cursor[data-id="' + CSS.escape(id) + '"]');
                if (!li || !el) return false;
                const shown = el.classList.contains('idle') ? 'idle' : el.dataset.status;
                return li.dataset.status === status && shown === status;
            }""",
            [user_id, status],
            within,
        )

    async def wait_cursor(
        self,
        cursor_id: str,
        at: tuple[float, float],
        *,
        name: str | None = None,
        within: float = 5.0,
    ) -> None:
        """Wait until the remote cursor `cursor_id` is shown at `at` (normalised coords)."""
        try:
            await self.page.wait_for_function(
                """([id, x, y, name]) => {
                    const el = document.querySelector(
                        '#cursors .cursor[data-id="' + CSS.escape(id) + '"]');
                    if (!el || el.hidden || !el.checkVisibility()) return false;
                    if (Math.abs(Number(el.dataset.x) - x) > 1e-4) return false;
                    if (Math.abs(Number(el.dataset.y) - y) > 1e-4) return false;
                    const label = el.querySelector('.cursor-name');
                    return name === null || (label && label.textContent === name);
                }""",
                arg=[cursor_id, at[0], at[1], name],
                timeout=within * 1000,
                polling=50,
            )
        except Exception as exc:
            seen = await self.cursors()
            raise AssertionError(
                f"{self.name}: cursor {cursor_id} ({name}) not shown at {at} within {within}s;"
                f" cursors={seen}; {self.diagnostics()}"
            ) from exc

    async def wait_cursor_gone(self, cursor_id: str, within: float) -> float:
        """Wait until the cursor `cursor_id` is out of the DOM; the seconds it took."""
        start = time.monotonic()
        try:
            await self.page.wait_for_function(
                """(id) => !document.querySelector(
                    '#cursors .cursor[data-id="' + CSS.escape(id) + '"]')""",
                arg=cursor_id,
                timeout=within * 1000,
                polling=50,
            )
        except Exception as exc:
            raise AssertionError(
                f"{self.name}: cursor {cursor_id} still there after {within}s;"
                f" cursors={await self.cursors()}; {self.diagnostics()}"
            ) from exc
        return time.monotonic() - start

    async def cursors(self) -> list[dict[str, Any]]:
        cursors: list[dict[str, Any]] = await self.page.evaluate(
            """() => Array.from(document.querySelectorAll('#cursors .cursor')).map(el => ({
                id: el.dataset.id, x: el.dataset.x, y: el.dataset.y, hidden: el.hidden,
                name: (el.querySelector('.cursor-name') || {}).textContent,
            }))"""
        )
        return cursors

    async def close(self) -> None:
        """Close the tab, as a person does: its browser (the context) stays open, so what
        the page sends on its way out (its `sendBeacon` byes) still leaves. Closing the
        context at once would cancel those requests, which no closed tab does."""
        with contextlib.suppress(Exception):
            await self.page.close()

    async def dispose(self) -> None:
        """Close the tab and its browser context (teardown)."""
        await self.close()
        with contextlib.suppress(Exception):
            await self.context.close()


class Apps:
    """Opens pages of the app; `traffic` holds every URL any of them requested."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.traffic = Traffic()
        self.opened: list[App] = []

    async def open(
        self,
        *,
        room: str,
        name: str,
        transports: str | None = None,
        origin: str | None = None,
        server: str | None = None,
        wait: bool = True,
        init_script: str | None = None,
        prepare: Callable[[Page], Awaitable[None]] | None = None,
        viewport: dict[str, int] | None = None,
        device: dict[str, Any] | None = None,
        context: BrowserContext | None = None,
    ) -> App:
        """A page of the app from `origin` (default: the server), joined to `room`.

        `init_script` runs in every frame before the page's scripts; `prepare(page)` runs
        before the page is loaded (to install routes, say).
        """
        params = {"room": room, "name": name}
        if transports is not None:
            params["transports"] = transports
        if server is not None:
            params["server"] = server
        url = f"{origin or self.server.url}/?{urlencode(params)}"
        if context is None:
            # a device (playwright.devices["Pixel 7"]) brings its viewport, touch and UA
            options: dict[str, Any] = dict(device) if device else {"viewport": VIEWPORT}
            if viewport:
                options["viewport"] = viewport
            context = await self.browser.new_context(**options)
        page = await context.new_page()
        app = App(name=name, context=context, page=page, url=url)
        self.opened.append(app)
        self._record(app)
        if init_script:
            await page.add_init_script(init_script)
        if prepare is not None:
            await prepare(page)
        try:
            await page.goto(url)
        except Exception as exc:
            # e.g. the `load` event never came: say what the document was still waiting for
            state = "?"
            with contextlib.suppress(Exception):
                state = await page.evaluate(
                    """() => ({readyState: document.readyState,
                        frames: Array.from(document.querySelectorAll('iframe'), f => f.src),
                        app: window.cursorshare && [cursorshare.state, cursorshare.transport]})"""
                )
            raise AssertionError(
                f"{name}: page did not load ({exc}); {state}; {app.diagnostics()}"
            ) from exc
        if wait:
            await app.wait_open()
        return app

    def _record(self, app: App) -> None:
        def on_request(request: Request) -> None:
            self.traffic.requests.append(request.url)

        def on_websocket(ws: WebSocket) -> None:
            self.traffic.websockets.append(ws.url)

        def on_console(message: ConsoleMessage) -> None:
            app.console.append(f"{message.type}: {message.text}")

        def on_error(error: Error) -> None:
            app.errors.append(f"{error.message} @ {error.stack}")

        app.context.on("request", on_request)
        app.page.on("websocket", on_websocket)
        app.page.on("console", on_console)
        app.page.on("pageerror", on_error)

        def on_response(response: Response) -> None:
            app.responses.append(response)

        app.page.on("response", on_response)

    async def close_all(self) -> None:
        await asyncio.gather(*(app.dispose() for app in self.opened))
