"""Bad input: a v2 sender is told why (`{"type":"error","error":<text>}`, texts from
docs/protocol.md), a tutorial sender's message is dropped silently, nothing reaches the other
users, and the server keeps working for everyone. A malformed room closes the session with
`c[4001,"Invalid room"]`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cursorshare.cursors.app import BAD_ROOM
from cursorshare.sockjs import CloseReason
from tests.support.clients import SessionClosed, SockJSClient

from .conftest import TICK_MS, Connect, is_move_from, query, welcome_of

VALID = {"type": "move", "x": 0.5, "y": 0.5}


def raw(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


V2_CASES = {
    "not-json": ("{not json", "not JSON"),
    "truncated": ('{"type":"move","x":0.5,', "not JSON"),
    "array": ("[0.5, 0.5]", "not JSON"),
    "string": ('"move"', "not JSON"),
    "number": ("42", "not JSON"),
    "nan-literal": ('{"type":"move","x":NaN,"y":0.5}', "not JSON"),
    "x-string": (raw({**VALID, "x": "1"}), "bad coordinates"),
    "x-true": (raw({**VALID, "x": True}), "bad coordinates"),
    "y-false": (raw({**VALID, "y": False}), "bad coordinates"),
    "x-null": (raw({**VALID, "x": None}), "bad coordinates"),
    "y-list": (raw({**VALID, "y": [0.5]}), "bad coordinates"),
    "x-missing": (raw({"type": "move", "y": 0.5}), "bad coordinates"),
    "x-above-1": (raw({**VALID, "x": 2}), "bad coordinates"),
    "x-just-above-1": (raw({**VALID, "x": 1.0000001}), "bad coordinates"),
    "y-negative": (raw({**VALID, "y": -0.01}), "bad coordinates"),
    "x-1e999": ('{"type":"move","x":1e999,"y":0.5}', "bad coordinates"),
    "y-minus-1e999": ('{"type":"move","x":0.5,"y":-1e999}', "bad coordinates"),
    "unknown-type": (raw({**VALID, "type": "jump"}), "unknown type"),
    "no-type": (raw({"x": 0.5, "y": 0.5}), "unknown type"),
    "type-not-string": (raw({**VALID, "type": 1}), "unknown type"),
    "name-33-chars": (raw({**VALID, "name": "n" * 33}), "bad name"),
    "name-number": (raw({**VALID, "name": 42}), "bad name"),
    "name-null": (raw({**VALID, "name": None}), "bad name"),
    "name-control-char": (raw({**VALID, "name": "a\u0007b"}), "bad name"),
    "over-4096-bytes": (raw({**VALID, "pad": "a" * 4100}), "message too large"),
    # 2100 two-byte characters: about 2,150 characters but over 4,200 bytes.
    "over-4096-bytes-multibyte": (raw({**VALID, "pad": "\u00e9" * 2100}), "message too large"),
}

TUTORIAL_CASES = {
    "not-json": "{not json",
    "array": "[640, 200]",
    "x-string": raw({"x": "640", "y": 200}),
    "x-true": raw({"x": True, "y": 200}),
    "y-null": raw({"x": 640, "y": None}),
    "y-missing": raw({"x": 640}),
    "x-1e7": raw({"x": 1e7, "y": 200}),
    "y-minus-1e7": raw({"x": 640, "y": -1e7}),
    "x-1e999": '{"x":1e999,"y":200}',
    "over-4096-bytes": raw({"x": 640, "y": 200, "pad": "a" * 4100}),
    "over-4096-bytes-multibyte": raw({"x": 640, "y": 200, "pad": "\u00e9" * 2100}),
}


@dataclass
class Room:
    sender: SockJSClient
    sender_id: str
    v2_watcher: SockJSClient
    tutorial_watcher: SockJSClient


async def room_of(connect: Connect, name: str, *, sender_v2: bool, transport: str) -> Room:
    """A v2 watcher and a tutorial watcher, then the sender (whose join they have seen)."""
    v2_watcher = await connect("websocket", room=name)
    known = {(await welcome_of(v2_watcher))["id"]}

    async def next_join() -> str:
        join = await v2_watcher.recv_json_until(
            lambda m: m.get("type") == "join" and m["id"] not in known
        )
        known.add(join["id"])
        return str(join["id"])

    tutorial_watcher = await connect("xhr-streaming", room=name, v2=False)
    await next_join()
    sender = await connect(transport, room=name, v2=sender_v2)
    sender_id = await next_join()
    if sender_v2:
        assert (await welcome_of(sender))["id"] == sender_id
    return Room(sender, sender_id, v2_watcher, tutorial_watcher)


async def assert_only_the_valid_move_got_through(room: Room, x: float, tutorial_x: int) -> None:
    """The watchers' next message from the sender is its valid move: the bad ones never came."""
    v2_move = await room.v2_watcher.recv_json_until(is_move_from(room.sender_id))
    assert v2_move["x"] == x, (v2_move, room.v2_watcher.skipped)
    tutorial_move = await room.tutorial_watcher.recv_json_until(
        lambda m: m.get("sender") == room.sender_id
    )
    assert tutorial_move["x"] == tutorial_x, (tutorial_move, room.tutorial_watcher.skipped)
    assert not [m for m in room.v2_watcher.skipped if m.get("type") not in ("join", "move")]


@pytest.mark.parametrize(("message", "error"), V2_CASES.values(), ids=V2_CASES.keys())
async def test_v2_bad_message_is_refused_with_the_documented_error(
    connect: Connect, message: str, error: str
) -> None:
    room = await room_of(connect, "bad-v2", sender_v2=True, transport="websocket")
    await room.sender.send(message)
    refusal = await room.sender.recv_json_until(
        lambda m: m.get("type") == "error" or is_move_from(room.sender_id)(m)
    )
    assert refusal == {"type": "error", "error": error}
    assert not [m for m in room.sender.skipped if m.get("type") == "move"], room.sender.skipped

    await room.sender.send({**VALID, "x": 0.125})
    own = await room.sender.recv_json_until(is_move_from(room.sender_id))
    assert own["x"] == 0.125
    assert not [m for m in room.sender.skipped if m.get("type") == "error"]
    await assert_only_the_valid_move_got_through(room, 0.125, 125)


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling", "eventsource"])
async def test_v2_errors_reach_senders_on_http_transports(connect: Connect, transport: str) -> None:
    room = await room_of(connect, "bad-http", sender_v2=True, transport=transport)
    await room.sender.send_many(["{not json", raw({**VALID, "x": 2}), raw({**VALID, "x": 0.75})])
    first = await room.sender.recv_json_until(lambda m: m.get("type") == "error")
    second = await room.sender.recv_json_until(lambda m: m.get("type") in ("error", "move"))
    assert [first, second] == [
        {"type": "error", "error": "not JSON"},
        {"type": "error", "error": "bad coordinates"},
    ]
    await assert_only_the_valid_move_got_through(room, 0.75, 750)


@pytest.mark.parametrize("message", TUTORIAL_CASES.values(), ids=TUTORIAL_CASES.keys())
async def test_tutorial_bad_message_is_dropped_silently(connect: Connect, message: str) -> None:
    room = await room_of(connect, "lobby", sender_v2=False, transport="websocket")
    await room.sender.send(message)
    # No answer comes back to a tutorial sender: wait a few ticks so that a wrongly accepted
    # message could not be hidden by coalescing with the valid move that follows.
    await asyncio.sleep(5 * TICK_MS / 1000)
    await room.sender.send({"x": 77, "y": 88})
    echo = await room.sender.recv_json_until(lambda m: m.get("sender") == room.sender_id)
    assert (echo["x"], echo["y"]) == (77, 88), f"a bad message got through: {str(echo)[:100]}"
    assert room.sender.skipped == []  # no error message, no echo of the bad one
    v2_move = await room.v2_watcher.recv_json_until(is_move_from(room.sender_id))
    assert (v2_move["x"], v2_move["px"]) == (77, True)
    tutorial_move = await room.tutorial_watcher.recv_json_until(
        lambda m: m.get("sender") == room.sender_id
    )
    assert tutorial_move["x"] == 77


async def test_boundaries_that_are_accepted(connect: Connect) -> None:
    room = await room_of(connect, "edges", sender_v2=True, transport="websocket")
    name = "n" * 32
    await room.sender.send({"type": "move", "x": 0, "y": 1, "name": f"  {name}  "})
    move = await room.v2_watcher.recv_json_until(is_move_from(room.sender_id))
    assert (move["x"], move["y"], move["name"]) == (0, 1, name)
    await room.sender.send({**VALID, "x": 1.0, "pad": "a" * (4096 - 60)})
    move = await room.v2_watcher.recv_json_until(is_move_from(room.sender_id))
    assert move["x"] == 1.0
    assert "pad" not in move


async def test_the_server_keeps_working_for_everyone_after_a_burst_of_bad_input(
    connect: Connect,
) -> None:
    room = await room_of(connect, "burst", sender_v2=True, transport="websocket")
    tutorial = await connect("eventsource", room="burst", v2=False)
    await room.sender.send_many([message for message, _ in V2_CASES.values()])
    await tutorial.send_many(list(TUTORIAL_CASES.values()))
    await room.sender.send({**VALID, "x": 0.625})
    await tutorial.send({"x": 5, "y": 6, "last": True})

    await room.v2_watcher.recv_json_until(is_move_from(room.sender_id, x=0.625))
    await room.v2_watcher.recv_json_until(lambda m: m.get("px") is True and m["x"] == 5)
    await room.tutorial_watcher.recv_json_until(lambda m: m.get("last") is True)
    # A newcomer and the old watcher still exchange moves.
    late = await connect("xhr-polling", room="burst")
    late_id = (await welcome_of(late))["id"]
    await late.send({**VALID, "x": 0.875})
    await room.v2_watcher.recv_json_until(is_move_from(late_id, x=0.875))


# -- malformed rooms ----------------------------------------------------------------------------

BAD_ROOMS = {"space": "a b", "65-chars": "r" * 65, "slash": "a/b", "unicode": "caf\u00e9"}


@pytest.mark.parametrize("room", BAD_ROOMS.values(), ids=BAD_ROOMS.keys())
@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "eventsource"])
async def test_a_malformed_room_closes_the_session(
    connect: Connect, transport: str, room: str
) -> None:
    client = await connect(transport, room=room)
    assert await client.wait_closed() == (4001, "Invalid room")
    with pytest.raises(SessionClosed):
        await client.recv(timeout=1)


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "tutorial"])
async def test_a_malformed_room_closes_a_websocket_with_the_close_frame(
    server: TestServer, v2: bool
) -> None:
    url = server.make_url("/ws/000/abc/websocket?" + query(v2=v2, room="r" * 65))
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        frames = []
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frames.append(msg.data)
    assert frames == ["o", 'c[4001,"Invalid room"]']


def test_the_bad_room_close_is_a_close_reason_like_every_other_close_code() -> None:
    # Issue #12: every close code is a CloseReason, with its code and reason by name.
    assert isinstance(BAD_ROOM, CloseReason)
    assert (BAD_ROOM.code, BAD_ROOM.reason) == (4001, "Invalid room")


async def test_a_64_char_room_is_fine(connect: Connect) -> None:
    client = await connect("websocket", room="r" * 64)
    assert (await welcome_of(client))["room"] == "r" * 64
