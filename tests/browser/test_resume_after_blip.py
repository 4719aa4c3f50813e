"""Resume after the client's network vanished (issue #13: "a network blip ... gives a new id").

When a phone changes networks or Wi-Fi drops, the browser learns at once that its connection
is gone, but the server hears nothing: a dead TCP connection stays silent for minutes. The page
reconnects within a second, presenting its resume key while the server still holds the old
session. It must come back as itself (same id, colour, name), not as a second person beside a
frozen copy of itself. And since a duplicated tab carries the same key, the older window is
then told so and joins anew only when its person asks, so the two never take turns.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from .conftest import Apps, free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


class VanishingNetwork:
    """A TCP relay between the browser and the server whose `vanish` kills the browser's
    side of every connection and leaves the server's side open and silent: what the server
    sees when a client's network disappears."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._relays: set[asyncio.Task[None]] = set()
        #: The server's sides of vanished connections: open, never written to again.
        self._silent: list[asyncio.StreamWriter] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._links.append((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            relay = asyncio.create_task(self._relay(source, sink))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)

    @staticmethod
    async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except asyncio.CancelledError:
            return  # the network vanished: nobody tells anybody
        except OSError:
            pass
        sink.close()

    def vanish(self) -> None:
        for relay in list(self._relays):
            relay.cancel()
        for browser_side, server_side in self._links:
            browser_side.transport.abort()
            self._silent.append(server_side)
        self._links.clear()

    async def stop(self) -> None:
        self.vanish()
        for server_side in self._silent:
            server_side.transport.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


async def test_a_client_whose_network_vanished_comes_back_as_itself(apps: Apps, room: str) -> None:
    network = VanishingNetwork(apps.server.port)
    await network.start()
    try:
        ada = await apps.open(room=room, name="Ada", origin=network.origin)
        bo = await apps.open(room=room, name="Bo")
        await bo.wait_people(["Bo", "Ada"])
        before = await ada.page.evaluate("() => [cursorshare.id, cursorshare.color]")
        await ada.wait_for("connections made", "() => cursorshare.connects === 1")
        network.vanish()
        await ada.wait_for("reconnected", "() => cursorshare.connects >= 2", within=15)
        await ada.wait_open(within=20)
        after = await ada.page.evaluate(
            "() => [cursorshare.id, cursorshare.color, cursorshare.resumed]"
        )
        assert after == [*before, True], (before, after)
        # Bo sees one Ada, who moves as herself: no second, frozen Ada
        at = await ada.point(0.3, 0.6)
        await bo.wait_cursor(str(before[0]), at, name="Ada")
        people = await bo.people()
        assert [(p["name"], p["id"]) for p in people] == [("Bo", None), ("Ada", before[0])]
    finally:
        await network.stop()


async def test_a_duplicated_tab_takes_the_identity_and_the_first_stops_taking_turns(
    apps: Apps, room: str
) -> None:
    ada = await apps.open(room=room, name="Ada")
    ada_id = await ada.id()
    # window.open copies the opener's sessionStorage, the resume key with it, as
    # "Duplicate tab" does
    async with ada.context.expect_page() as popup:
        await ada.page.evaluate("() => window.open(location.href)")
    twin = await popup.value
    await twin.wait_for_function(
        "() => window.cursorshare && cursorshare.state === 'open' && cursorshare.id", polling=50
    )
    assert await twin.evaluate("cursorshare.id") == ada_id
    # the first window says why it stopped, and does not take the identity back by itself
    await ada.wait_for("held", "() => cursorshare.state === 'held'")
    problem = await ada.page.locator("#problem").inner_text()
    assert "another window" in problem, problem
    assert await ada.page.locator("#retry-now").is_visible(), problem
    assert await ada.page.evaluate("cursorshare.connects") == 1
    # retry now: someone new here, and the twin keeps Ada's identity
    await ada.page.locator("#retry-now").click()
    await ada.wait_open()
    assert await ada.id() != ada_id
    assert await twin.evaluate("cursorshare.state") == "open"
    assert await twin.evaluate("cursorshare.id") == ada_id
