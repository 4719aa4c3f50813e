"""The cursor app end to end, v2 clients on every transport (docs/protocol.md).

Every client of one room sees every other's moves whatever its transport; a newcomer is
welcomed with everyone present; a client that says bye is reported as `leave` at once, one
that goes away without a bye as `reconnecting` within disconnect_delay + 1 s; rooms are
isolated; each flush reaches a websocket as one frame;
`/healthz` and `/metrics` answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.support.clients import SockJSClient

from .conftest import (
    DISCONNECT_DELAY,
    TRANSPORTS,
    Connect,
    is_leave,
    is_move_from,
    is_presence,
    welcome_of,
)

COLOR = re.compile(r"#[0-9a-f]{6}")
#: A leave (or reconnecting) must reach the others before this many seconds have passed: the
#: disconnect delay plus room for a loaded CI machine, far below any resume grace.
LEAVE_DEADLINE = DISCONNECT_DELAY + 5.0


async def moves_seen(
    client: SockJSClient,
    expected: dict[str, float],
    timeout: float = 5.0,  # noqa: ASYNC109
) -> dict[str, float]:
    """Read until ``client`` has seen a move with x == expected[sender] from every sender."""
    seen: dict[str, float] = {}

    def done(message: Any) -> bool:
        sender = message.get("sender")
        if message.get("type") == "move" and expected.get(sender) == message.get("x"):
            seen[sender] = message["x"]
        return seen.keys() == expected.keys()

    await client.recv_json_until(done, timeout)
    return seen


# -- every transport in one room ------------------------------------------------------------


async def test_clients_on_every_transport_see_each_others_moves(connect: Connect) -> None:
    clients = {t: await connect(t, room="mixed") for t in TRANSPORTS}
    ids = {t: (await welcome_of(c))["id"] for t, c in clients.items()}
    xs = {t: round(0.1 * (i + 1), 2) for i, t in enumerate(TRANSPORTS)}

    await asyncio.gather(
        *(c.send({"type": "move", "x": xs[t], "y": 0.5}) for t, c in clients.items())
    )

    async def check(transport: str) -> None:
        expected = {ids[t]: xs[t] for t in TRANSPORTS if t != transport}
        assert await moves_seen(clients[transport], expected) == expected

    await asyncio.gather(*(check(t) for t in TRANSPORTS))


async def test_a_move_reaches_the_others_with_sender_color_and_name(connect: Connect) -> None:
    watcher = await connect("xhr-streaming", room="shape")
    await welcome_of(watcher)
    mover = await connect("websocket", room="shape", name="Ada")
    me = await welcome_of(mover)
    await mover.send({"type": "move", "x": 0.25, "y": 1})
    message = await watcher.recv_json_until(is_move_from(me["id"]))
    assert message == {
        "type": "move",
        "sender": me["id"],
        "color": me["color"],
        "name": "Ada",
        "x": 0.25,
        "y": 1,
        "pointer": "mouse",
    }
    await mover.send({"type": "move", "x": 0, "y": 0, "name": "  Grace  "})
    message = await watcher.recv_json_until(is_move_from(me["id"], x=0))
    assert message["name"] == "Grace"


# -- welcome ------------------------------------------------------------------------------------


async def test_a_newcomer_is_welcomed_with_everyone_present_and_their_last_positions(
    connect: Connect,
) -> None:
    ada = await connect("websocket", room="snap", name="Ada")
    ada_id = (ada_welcome := await welcome_of(ada))["id"]
    assert ada_welcome["users"] == []
    assert ada_welcome["room"] == "snap"
    assert COLOR.fullmatch(ada_welcome["color"])

    bob = await connect("xhr-polling", room="snap")
    bob_welcome = await welcome_of(bob)
    idle = await connect("eventsource", room="snap", name="Idle")
    idle_welcome = await welcome_of(idle)

    for x in (0.1, 0.2, 0.25):
        await ada.send({"type": "move", "x": x, "y": 0.75})
    await bob.send({"type": "move", "x": 0.5, "y": 0.5, "name": "Bob"})
    await ada.recv_json_until(is_move_from(ada_id, x=0.25))
    await ada.recv_json_until(is_move_from(bob_welcome["id"]))

    late = await connect("jsonp-polling", room="snap")
    welcome = await welcome_of(late)
    users = {user["id"]: user for user in welcome["users"]}
    assert users == {
        ada_id: {
            "id": ada_id, "color": ada_welcome["color"], "name": "Ada",
            "x": 0.25, "y": 0.75, "px": False, "status": "active", "pointer": "mouse",
        },
        bob_welcome["id"]: {
            "id": bob_welcome["id"], "color": bob_welcome["color"], "name": "Bob",
            "x": 0.5, "y": 0.5, "px": False, "status": "active", "pointer": "mouse",
        },
        idle_welcome["id"]: {
            "id": idle_welcome["id"], "color": idle_welcome["color"], "name": "Idle",
            "x": None, "y": None, "px": False, "status": "active", "pointer": "mouse",
        },
    }  # fmt: skip
    assert welcome["id"] not in users
    assert len({welcome["color"], *(u["color"] for u in users.values())}) == 4


async def test_others_are_told_of_a_join(connect: Connect) -> None:
    watcher = await connect("websocket", room="joins")
    await welcome_of(watcher)
    newcomer = await connect("xhr-polling", room="joins", name="Nia")
    me = await welcome_of(newcomer)
    join = await watcher.recv_json_until(lambda m: m.get("type") == "join" and m["id"] == me["id"])
    assert join == {
        "type": "join", "id": me["id"], "color": me["color"], "name": "Nia",
        "status": "active", "pointer": "mouse",
    }  # fmt: skip


# -- leaving ------------------------------------------------------------------------------------


async def assert_told_before_deadline(
    watcher: SockJSClient, predicate: Callable[[Any], bool], since: float
) -> None:
    remaining = since + LEAVE_DEADLINE - time.monotonic()
    await watcher.recv_json_until(predicate, timeout=remaining)
    assert time.monotonic() - since < LEAVE_DEADLINE


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_says_bye_is_reported_as_leave_at_once(
    connect: Connect, transport: str
) -> None:
    watcher = await connect("websocket", room="bye")
    await welcome_of(watcher)
    leaver = await connect(transport, room="bye")
    leaver_id = (await welcome_of(leaver))["id"]
    await leaver.send({"type": "move", "x": 0.5, "y": 0.5})
    await watcher.recv_json_until(is_move_from(leaver_id))

    said = time.monotonic()
    await leaver.send({"type": "bye"})
    await assert_told_before_deadline(watcher, is_leave(leaver_id), said)
    assert not [m for m in watcher.skipped if m.get("type") == "presence"]
    await leaver.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_goes_away_without_bye_is_reported_as_reconnecting(
    connect: Connect, transport: str
) -> None:
    watcher = await connect("websocket", room="gone")
    await welcome_of(watcher)
    leaver = await connect(transport, room="gone")
    leaver_id = (await welcome_of(leaver))["id"]
    await leaver.send({"type": "move", "x": 0.5, "y": 0.5})
    await watcher.recv_json_until(is_move_from(leaver_id))

    await leaver.close()
    gone = time.monotonic()
    await assert_told_before_deadline(watcher, is_presence(leaver_id, "reconnecting"), gone)
    assert not [m for m in watcher.skipped if m.get("type") == "leave"]


@pytest.mark.parametrize(
    ("transport", "method", "suffix"),
    [("xhr-polling", "POST", "xhr"), ("jsonp-polling", "GET", "jsonp?c=cb&")],
)
async def test_an_http_client_that_stops_polling_is_reported_as_reconnecting(
    connect: Connect, base_url: str, transport: str, method: str, suffix: str
) -> None:
    watcher = await connect("websocket", room="quiet")
    watcher_id = (await welcome_of(watcher))["id"]
    sep = "" if suffix.endswith("&") else "?"
    url = f"{base_url}/000/{uuid.uuid4().hex}/{suffix}{sep}v=2&room=quiet"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url) as response:
            assert "o" in await response.text()
        async with http.request(method, url) as response:
            assert "welcome" in await response.text()
        stopped = time.monotonic()  # no request of this session is in flight from now on
        join = await watcher.recv_json_until(
            lambda m: m.get("type") == "join" and m["id"] != watcher_id
        )
        await assert_told_before_deadline(watcher, is_presence(join["id"], "reconnecting"), stopped)


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_a_tutorial_client_that_goes_away_is_reported_as_leave(
    connect: Connect, transport: str
) -> None:
    # A tutorial client has no resume key: it leaves at once, as before.
    watcher = await connect("websocket", room="tut-bye")
    watcher_id = (await welcome_of(watcher))["id"]
    leaver = await connect(transport, room="tut-bye", v2=False)
    join = await watcher.recv_json_until(
        lambda m: m.get("type") == "join" and m["id"] != watcher_id
    )
    await leaver.close()
    gone = time.monotonic()
    await assert_told_before_deadline(watcher, is_leave(join["id"]), gone)


# -- rooms --------------------------------------------------------------------------------------


async def test_rooms_are_isolated(connect: Connect) -> None:
    a = await connect("websocket", room="A")
    a_id = (await welcome_of(a))["id"]
    b = await connect("xhr-streaming", room="B")
    b_welcome = await welcome_of(b)
    assert b_welcome["users"] == []

    a2 = await connect("eventsource", room="A")
    a2_id = (await welcome_of(a2))["id"]
    await a.send({"type": "move", "x": 0.3, "y": 0.3})
    await a2.send({"type": "move", "x": 0.4, "y": 0.4})
    await moves_seen(a, {a_id: 0.3, a2_id: 0.4})
    await a2.send({"type": "bye"})
    await a.recv_json_until(is_leave(a2_id))

    # Everything of room A has been flushed; now B's own move closes B's stream.
    await b.send({"type": "move", "x": 0.9, "y": 0.9})
    await b.recv_json_until(is_move_from(b_welcome["id"], x=0.9))
    seen = [*b.skipped]
    assert all(m.get("id") == b_welcome["id"] for m in seen), seen
    b2 = await connect("websocket", room="B")
    assert [u["id"] for u in (await welcome_of(b2))["users"]] == [b_welcome["id"]]


# -- framing ------------------------------------------------------------------------------------


async def test_each_flush_reaches_a_websocket_as_one_frame(
    server: TestServer, connect: Connect
) -> None:
    senders = [await connect("websocket", room="frames") for _ in range(3)]
    ids = [(await welcome_of(s))["id"] for s in senders]
    url = server.make_url(f"/ws/000/{uuid.uuid4().hex}/websocket").with_query(v="2", room="frames")

    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:

        async def frame() -> str:
            msg = await asyncio.wait_for(ws.receive(), 5.0)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            return str(msg.data)

        assert await frame() == "o"
        welcome = await frame()
        assert welcome.startswith("a[")
        assert [json.loads(m)["type"] for m in json.loads(welcome[1:])] == ["welcome"]

        several: list[list[dict[str, Any]]] = []
        for round_ in range(5):
            await asyncio.sleep(0.1)  # a quiet spell, then every sender moves at once
            xs = {ids[i]: round_ / 10 + i / 100 for i in range(3)}
            await asyncio.gather(
                *(
                    s.send({"type": "move", "x": xs[sid], "y": 0.5})
                    for sid, s in zip(ids, senders, strict=True)
                )
            )
            pending = dict(xs)
            while pending:
                raw = await frame()
                if raw == "h":
                    continue
                assert raw.startswith("a["), raw
                messages = [json.loads(m) for m in json.loads(raw[1:])]
                moves = [
                    m for m in messages if m["type"] == "move" and xs.get(m["sender"]) == m["x"]
                ]
                for m in moves:
                    pending.pop(m["sender"], None)
                if len(moves) > 1:
                    several.append(moves)
                # One flush, one frame: a sender appears at most once in it.
                senders_in_frame = [m["sender"] for m in messages if m["type"] == "move"]
                assert len(senders_in_frame) == len(set(senders_in_frame)), raw

    assert several, "no frame carried the moves of several senders"
    assert all(len({m["sender"] for m in moves}) == len(moves) for moves in several)


# -- health and metrics -------------------------------------------------------------------------


async def test_healthz_and_metrics(server: TestServer, connect: Connect) -> None:
    client = await connect("websocket", room="health")
    await welcome_of(client)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/healthz")) as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == "ok"
        assert body["backplane"] == "local"
        assert body["sessions"] == 1
        assert body["rooms"] == 1
        async with http.get(server.make_url("/metrics")) as response:
            assert response.status == 200
            text = await response.text()
    assert "cursorshare_sessions" in text
    assert re.search(r'^cursorshare_sessions\{transport="websocket"\} 1\.0$', text, re.M), text
