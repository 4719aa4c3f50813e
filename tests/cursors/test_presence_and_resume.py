"""Presence and identity (issue #13, docs/protocol.md): colours per room, statuses, bye, and
resuming an identity with the tab's key within the grace.

The issue's words: "a newcomer gets the least-used colour in its room, so the first 16 people
in a room all differ"; "within a grace ... it gets back the same id, colour and name, and the
others see its cursor marked reconnecting instead of a leave and a join"; "the key is never
sent to other clients, an id (which is public) cannot resume, and a key works for one live
session at a time".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cursorshare.config import Settings
from cursorshare.cursors.messages import PALETTE
from cursorshare.server import build_app, make_runner
from tests.support.clients import SockJSClient

from .conftest import SETTINGS, Connect, is_leave, is_move_from, is_presence, welcome_of

#: The grace of the tests that wait for it to end.
SHORT_GRACE = 1.0


async def joined(connect: Connect, room: str, **kwargs: Any) -> tuple[SockJSClient, Any]:
    client = await connect("websocket", room=room, **kwargs)
    return client, await welcome_of(client)


# -- colours ------------------------------------------------------------------------------------


async def test_the_first_sixteen_of_a_room_all_get_different_colours(connect: Connect) -> None:
    colors = [(await joined(connect, "sixteen"))[1]["color"] for _ in PALETTE]
    assert sorted(colors) == sorted(PALETTE)


async def test_rooms_choose_their_colours_independently(connect: Connect) -> None:
    _, first_a = await joined(connect, "room-a")
    _, first_b = await joined(connect, "room-b")
    # Two people alone in their rooms (the "same colour" was across the server).
    assert first_a["color"] == first_b["color"] == PALETTE[0]
    _, second_a = await joined(connect, "room-a")
    assert second_a["color"] != first_a["color"]


async def test_a_newcomer_gets_the_colour_left_by_someone_who_left(connect: Connect) -> None:
    clients = [await joined(connect, "reuse") for _ in range(4)]
    leaver, leaver_welcome = clients[1]
    await leaver.send({"type": "bye"})
    watcher = clients[0][0]
    await watcher.recv_json_until(is_leave(leaver_welcome["id"]))
    _, newcomer = await joined(connect, "reuse")
    assert newcomer["color"] == leaver_welcome["color"]


# -- welcome and statuses -----------------------------------------------------------------------


async def test_the_welcome_lists_everyone_with_status_and_gives_a_key_to_its_owner_alone(
    connect: Connect,
) -> None:
    ada, ada_welcome = await joined(connect, "who", name="Ada")
    assert ada_welcome["resumed"] is False
    assert ada_welcome["grace"] == SETTINGS.resume_grace
    assert ada_welcome["name"] == "Ada"
    assert len(ada_welcome["resume"]) >= 22  # >= 128 bits in URL-safe base64
    await ada.send({"type": "presence", "status": "away"})
    _, bob_welcome = await joined(connect, "who", name="Bob")
    (user,) = bob_welcome["users"]
    assert user["id"] == ada_welcome["id"]
    assert (user["status"], user["pointer"], user["x"], user["y"]) == ("away", "mouse", None, None)
    assert "resume" not in user
    await ada.recv_json_until(lambda m: m.get("type") == "join" and m["id"] == bob_welcome["id"])
    assert ada_welcome["resume"] not in str(ada.skipped)
    assert bob_welcome["resume"] != ada_welcome["resume"]


async def test_away_and_active_are_relayed_and_a_move_means_active(connect: Connect) -> None:
    watcher, _ = await joined(connect, "status")
    mover, me = await joined(connect, "status")
    await mover.send({"type": "presence", "status": "away"})
    await watcher.recv_json_until(is_presence(me["id"], "away"))
    await mover.send({"type": "presence", "status": "active"})
    await watcher.recv_json_until(is_presence(me["id"], "active"))
    await mover.send({"type": "presence", "status": "away"})
    await watcher.recv_json_until(is_presence(me["id"], "away"))
    await mover.send({"type": "move", "x": 0.5, "y": 0.5, "pointer": "touch"})
    await watcher.recv_json_until(is_presence(me["id"], "active"))
    move = await watcher.recv_json_until(is_move_from(me["id"]))
    assert move["pointer"] == "touch"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "presence", "status": "reconnecting"}, "bad status"),
        ({"type": "presence"}, "bad status"),
        ({"type": "move", "x": 0, "y": 0, "pointer": "stylus"}, "bad pointer"),
    ],
)
async def test_bad_statuses_and_pointers_are_refused(
    connect: Connect, message: dict[str, Any], error: str
) -> None:
    client, _ = await joined(connect, "refused")
    await client.send(message)
    told = await client.recv_json_until(lambda m: m.get("type") == "error")
    assert told == {"type": "error", "error": error}


# -- resume -------------------------------------------------------------------------------------


async def test_resume_within_the_grace_gives_back_the_identity_without_leave_or_join(
    connect: Connect,
) -> None:
    watcher, watcher_welcome = await joined(connect, "resume")
    tab, first = await joined(connect, "resume", name="Ada")
    await tab.send({"type": "move", "x": 0.25, "y": 0.5})
    await watcher.recv_json_until(is_move_from(first["id"]))
    await tab.close()
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
    _, late_welcome = await joined(connect, "resume")  # sees it as reconnecting meanwhile
    assert {u["id"]: u["status"] for u in late_welcome["users"]}[first["id"]] == "reconnecting"

    again, second = await joined(connect, "resume", resume=first["resume"])
    assert second["resumed"] is True
    assert (second["id"], second["color"], second["name"]) == (
        first["id"],
        first["color"],
        "Ada",
    )
    assert second["resume"] == first["resume"]
    assert {u["id"] for u in second["users"]} == {watcher_welcome["id"], late_welcome["id"]}
    await watcher.recv_json_until(is_presence(first["id"], "active"))
    await again.send({"type": "move", "x": 0.75, "y": 0.5})
    await watcher.recv_json_until(is_move_from(first["id"], x=0.75))
    told = [m.get("type") for m in watcher.skipped]
    assert "leave" not in told and "join" not in told[1:]  # only the late one joined


async def test_an_id_cannot_resume(connect: Connect) -> None:
    tab, first = await joined(connect, "by-id")
    watcher, _ = await joined(connect, "by-id")
    await tab.close()
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
    _, other = await joined(connect, "by-id", resume=first["id"])
    assert other["resumed"] is False and other["id"] != first["id"]
    _, forged = await joined(connect, "by-id", resume="x" * 32)
    assert forged["resumed"] is False and forged["id"] != first["id"]


async def test_a_key_presented_while_its_session_seems_alive_takes_the_identity_over(
    connect: Connect,
) -> None:
    """After a network change the client knows its connection is dead long before the server
    does (a silent TCP connection looks alive for minutes): its reconnect presents the key
    while the server still holds the old session. It must get its identity back, not a fresh
    one beside a frozen copy of itself; the older session is closed, so that a key still
    works for one live session at a time."""
    old, first = await joined(connect, "live")
    watcher, _ = await joined(connect, "live")
    new, second = await joined(connect, "live", resume=first["resume"])
    assert second["resumed"] is True
    assert (second["id"], second["color"], second["name"]) == (
        first["id"], first["color"], first["name"],
    )  # fmt: skip
    assert await old.wait_closed() == (4004, "Resumed by another connection")
    # the others saw no leave nor join, and the identity moves with its new session
    await new.send({"type": "move", "x": 0.25, "y": 0.75})
    told = [await watcher.recv_json()]
    while not is_move_from(first["id"])(told[-1]):
        told.append(await watcher.recv_json())
    assert (told[-1]["x"], told[-1]["y"]) == (0.25, 0.75)
    assert not [m for m in told if m.get("type") in ("leave", "join") and
                m.get("id") == first["id"]], told  # fmt: skip
    # the older client cannot take it back: its session is over, and one live session holds
    # the key; a key of another room still gives a fresh identity
    _, elsewhere = await joined(connect, "not-live", resume=first["resume"])
    assert elsewhere["resumed"] is False and elsewhere["id"] != first["id"]


async def test_a_key_gives_its_identity_to_one_live_session_at_a_time(connect: Connect) -> None:
    tab, first = await joined(connect, "once")
    watcher, _ = await joined(connect, "once")
    await tab.close()
    await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
    results = await asyncio.gather(
        *(joined(connect, "once", resume=first["resume"]) for _ in range(3))
    )
    # each takes the identity over from the one before: one live session holds it at the end
    assert {w["id"] for _, w in results} == {first["id"]}
    waits = [asyncio.create_task(client.wait_closed()) for client, _ in results]
    closed: list[Any] = []
    while len(closed) < 2:
        done, _ = await asyncio.wait(waits, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert done, "the older sessions were not closed"
        closed += [task.result() for task in done]
        waits = [task for task in waits if task not in done]
    assert closed == [(4004, "Resumed by another connection")] * 2
    (survivor,) = [client for client, _ in results if not client.ended]
    await survivor.send({"type": "move", "x": 0.5, "y": 0.5})
    await watcher.recv_json_until(is_move_from(first["id"], x=0.5))
    waits[0].cancel()


async def test_a_key_of_another_room_gives_a_fresh_identity(connect: Connect) -> None:
    tab, first = await joined(connect, "here")
    await tab.close()
    _, elsewhere = await joined(connect, "there", resume=first["resume"])
    assert elsewhere["resumed"] is False and elsewhere["id"] != first["id"]


async def test_bye_leaves_at_once_and_the_key_cannot_resume(connect: Connect) -> None:
    watcher, _ = await joined(connect, "gone-for-good")
    tab, first = await joined(connect, "gone-for-good")
    await tab.send({"type": "bye"})
    await watcher.recv_json_until(is_leave(first["id"]))
    assert not [m for m in watcher.skipped if m.get("type") == "presence"]
    await tab.close()
    _, again = await joined(connect, "gone-for-good", resume=first["resume"])
    assert again["resumed"] is False


class TestAfterTheGrace:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(**{**SETTINGS.__dict__, "resume_grace": SHORT_GRACE})

    async def test_after_the_grace_the_others_see_a_leave_and_the_key_is_worthless(
        self, connect: Connect
    ) -> None:
        watcher, _ = await joined(connect, "late")
        tab, first = await joined(connect, "late")
        assert first["grace"] == SHORT_GRACE
        await tab.close()
        await watcher.recv_json_until(is_presence(first["id"], "reconnecting"))
        await watcher.recv_json_until(is_leave(first["id"]), timeout=SHORT_GRACE + 10)
        _, again = await joined(connect, "late", resume=first["resume"])
        assert again["resumed"] is False and again["id"] != first["id"]


# -- the access log -----------------------------------------------------------------------------


async def test_the_resume_key_is_absent_from_access_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    access = logging.getLogger("test.cursorshare.access")
    runner = make_runner(build_app(SETTINGS), SETTINGS, access_log=access)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        key = "K" * 32
        url = f"http://{host}:{port}/ws/000/abc/xhr?v=2&room=log&resume={key}&name=Ada"
        headers = {"Referer": f"http://x/?resume={key}"}
        with caplog.at_level(logging.INFO, logger=access.name):
            async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as r:
                assert r.status == 200
                await r.read()
        lines = [record.getMessage() for record in caplog.records if record.name == access.name]
        assert lines, "no access log line"
        assert all(key not in line for line in lines), lines
        assert any("resume=%5Bredacted%5D" in line or "resume=[redacted]" in line
                   for line in lines), lines  # fmt: skip
        assert any("room=log" in line for line in lines), lines
    finally:
        await runner.cleanup()


async def test_member_ids_carry_64_random_bits(connect: Connect) -> None:
    """The red-team finding: 32-bit ids collide at even odds among ~77 000 members."""
    _, first = await joined(connect, "ids")
    _, second = await joined(connect, "ids")
    for welcome in (first, second):
        assert len(welcome["id"]) == 16 and int(welcome["id"], 16) >= 0
    assert first["id"] != second["id"]
