"""`POST /presence/bye` (docs/protocol.md, "Bye over HTTP"): a closing tab's bye that names its
resume key, so it does not depend on its session. Issue #13's users: "cursors gone 0.05-0.08 s
after a tab closes"; a session's own bye loses the race against the page's aborted request on
the HTTP transports, and its member then showed `reconnecting` for the whole grace (120 s).

The body is the key as text, as `navigator.sendBeacon(url, key)` sends it (text/plain, a
CORS-simple request). Whether or not the key names anyone the answer is 204 (no oracle);
malformed bodies get 400/413, and past `max_byes_per_minute` per address 429 with no work.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cursorshare.config import Settings
from cursorshare.cursors.bye import BYE_PATH, PerAddressBudget
from tests.support.clients import SockJSClient

from .conftest import SETTINGS, Connect, is_leave, is_presence, welcome_of

#: Well below the suite's grace (30 s): a leave within it came from the bye, not the grace.
WITHIN = 10.0


async def joined(
    connect: Connect, room: str, transport: str = "websocket", **kwargs: Any
) -> tuple[SockJSClient, Any]:
    client = await connect(transport, room=room, **kwargs)
    return client, await welcome_of(client)


async def post_bye(server: TestServer, body: str, **headers: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.make_url(BYE_PATH),
            data=body.encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8", **headers},
        ) as response,
    ):
        await response.read()
        return response.status


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_a_live_member_named_by_its_key_leaves_at_once_and_its_session_closes(
    connect: Connect, server: TestServer, transport: str
) -> None:
    watcher, _ = await joined(connect, "http-bye")
    tab, first = await joined(connect, "http-bye", transport)
    assert await post_bye(server, first["resume"]) == 204
    await watcher.recv_json_until(is_leave(first["id"]), timeout=WITHIN)
    assert not [m for m in watcher.skipped if m.get("type") == "presence"]
    assert await tab.wait_closed() == (1000, "Bye")
    _, again = await joined(connect, "http-bye", resume=first["resume"])
    assert again["resumed"] is False and again["id"] != first["id"]


async def test_a_reconnecting_member_named_by_its_key_leaves_before_its_grace(
    connect: Connect, server: TestServer
) -> None:
    """The race the issue measured: the session ended first (aborted request), then the bye."""
    watcher, _ = await joined(connect, "http-bye-dropped")
    tab, first = await joined(connect, "http-bye-dropped", "xhr-streaming")
    await tab.close()
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"), timeout=WITHIN)
    assert await post_bye(server, first["resume"]) == 204
    await watcher.recv_json_until(is_leave(first["id"]), timeout=WITHIN)
    _, again = await joined(connect, "http-bye-dropped", resume=first["resume"])
    assert again["resumed"] is False and again["id"] != first["id"]


async def test_a_second_bye_and_an_unknown_key_get_204_and_end_nobody(
    connect: Connect, server: TestServer
) -> None:
    _, stayer = await joined(connect, "http-bye-unknown")
    _, leaver = await joined(connect, "http-bye-unknown")
    assert await post_bye(server, "A" * 32) == 204  # well-formed, names nobody
    assert await post_bye(server, leaver["resume"]) == 204
    assert await post_bye(server, leaver["resume"]) == 204  # the same answer the second time
    _, newcomer = await joined(connect, "http-bye-unknown")
    assert [user["id"] for user in newcomer["users"]] == [stayer["id"]]


@pytest.mark.parametrize(
    ("body", "status"),
    [("", 400), ("not a key", 400), ("A" * 31, 400), ("A" * 65, 413), ("k3f9a2", 400)],
)
async def test_a_body_that_is_not_a_key_gets_a_clear_error(
    connect: Connect, server: TestServer, body: str, status: int
) -> None:
    _, stayer = await joined(connect, "http-bye-bad")
    assert await post_bye(server, body) == status
    _, newcomer = await joined(connect, "http-bye-bad")
    assert [user["id"] for user in newcomer["users"]] == [stayer["id"]]


class TestRateLimit:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(**{**SETTINGS.__dict__, "max_byes_per_minute": 3})

    async def test_past_the_budget_of_its_address_a_bye_gets_429_and_does_nothing(
        self, connect: Connect, server: TestServer
    ) -> None:
        _, member = await joined(connect, "http-bye-rate")
        for _ in range(3):
            assert await post_bye(server, "B" * 32) == 204
        assert await post_bye(server, member["resume"]) == 429
        _, newcomer = await joined(connect, "http-bye-rate")
        assert [user["id"] for user in newcomer["users"]] == [member["id"]]


def test_the_budget_is_per_address_and_per_window() -> None:
    now = [0.0]
    budget = PerAddressBudget(2, window=60.0, clock=lambda: now[0])
    assert [budget.admit("a") for _ in range(3)] == [True, True, False]
    assert budget.admit("b") is True
    now[0] = 60.0
    assert budget.admit("a") is True
