"""Tutorial clients (no ``v=2``): their moves pass through unchanged, echoed to everyone in
the room (the sender included) with ``sender`` and ``color`` added; they are told nothing
but moves; and v2 clients sharing the room see their moves as pixel moves (docs/protocol.md).
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.clients import SockJSClient

from .conftest import Connect, is_move_from, welcome_of

COLOR = re.compile(r"#[0-9a-f]{6}")
TUTORIAL_KEYS = {"x", "y", "sender", "color"}


async def own_echo(client: SockJSClient, **fields: Any) -> dict[str, Any]:
    """The tutorial client's next message carrying these field values."""
    message = await client.recv_json_until(lambda m: all(m.get(k) == v for k, v in fields.items()))
    return message  # type: ignore[no-any-return]


async def test_a_tutorial_move_is_echoed_unchanged_with_sender_and_color(
    connect: Connect,
) -> None:
    watcher = await connect("websocket")  # v2, default room: lobby
    watcher_welcome = await welcome_of(watcher)
    assert watcher_welcome["room"] == "lobby"
    tutorial = await connect("xhr-streaming", v2=False)
    join = await watcher.recv_json_until(
        lambda m: m.get("type") == "join" and m["id"] != watcher_welcome["id"]
    )
    sender, color = join["id"], join["color"]

    await tutorial.send({"x": 640, "y": 200, "extra": "kept"})
    echo = await tutorial.recv_json(timeout=5)
    assert echo == {"x": 640, "y": 200, "extra": "kept", "sender": sender, "color": color}
    assert set(echo) == {"x", "y", "extra", "sender", "color"}
    assert COLOR.fullmatch(echo["color"])

    seen = await watcher.recv_json_until(is_move_from(sender))
    assert seen["type"] == "move"
    assert seen["px"] is True
    assert (seen["x"], seen["y"], seen["color"]) == (640, 200, color)


async def test_tutorial_clients_get_every_move_of_their_room_and_nothing_else(
    connect: Connect,
) -> None:
    first = await connect("websocket", v2=False)
    second = await connect("eventsource", v2=False)
    await first.send({"x": 1, "y": 1, "n": "first"})
    first_echo = await own_echo(first, n="first")

    v2 = await connect("xhr-polling", name="V")
    me = await welcome_of(v2)
    await v2.send({"type": "move", "x": 0.5, "y": 0.25})
    await v2.send({"type": "move", "x": 0.1234, "y": 0.9876})
    await v2.recv_json_until(is_move_from(me["id"], x=0.1234))
    await v2.close()
    other = await connect("jsonp-polling")  # joins and leaves again
    await welcome_of(other)
    await other.close()

    await second.send({"x": -3, "y": 4.5, "n": "second"})
    for client in (first, second):
        last = await own_echo(client, n="second")
        received = [*client.skipped, last]
        # Moves only: no welcome, join, leave or error of the v2 protocol.
        assert all("type" not in m for m in received), received
        assert all(set(m) >= TUTORIAL_KEYS for m in received), received
        # A v2 move in pixels of a 1000x1000 page, in the tutorial shape.
        v2_moves = [m for m in received if m["sender"] == me["id"]]
        assert v2_moves[-1] == {"x": 123, "y": 988, "sender": me["id"], "color": me["color"]}
        assert last["x"] == -3
        assert last["y"] == 4.5
    # The other tutorial client's first move reached the second one too.
    assert first_echo in [*second.skipped]


async def test_spoofed_sender_and_color_are_overwritten(connect: Connect) -> None:
    tutorial = await connect("websocket", v2=False)
    await tutorial.send({"x": 10, "y": 20})
    echo = await tutorial.recv_json()
    real = {"sender": echo["sender"], "color": echo["color"]}

    await tutorial.send({"x": 11, "y": 21, "sender": "evil", "color": "#000000"})
    spoofed = await tutorial.recv_json()
    assert spoofed == {"x": 11, "y": 21, **real}


async def test_a_tutorial_type_field_does_not_make_a_v2_message(connect: Connect) -> None:
    """A tutorial message is a pixel move for v2 clients whatever extra fields it carries:
    it must not be taken for a v2 move (no ``px``) nor pass as a join or leave of somebody."""
    victim = await connect("websocket")
    victim_id = (await welcome_of(victim))["id"]
    watcher = await connect("websocket")
    watcher_id = (await welcome_of(watcher))["id"]
    tutorial = await connect("websocket", v2=False)
    join = await watcher.recv_json_until(
        lambda m: m.get("type") == "join" and m["id"] not in (victim_id, watcher_id)
    )
    tutorial_id = join["id"]

    # One at a time (each echoed before the next), so that none coalesces with another.
    for message in (
        {"x": 640, "y": 200, "type": "leave", "id": victim_id},
        {"x": 641, "y": 201, "type": "move"},
        {"x": 642, "y": 202},
    ):
        await tutorial.send(message)
        await tutorial.recv_json()
    last = await watcher.recv_json_until(is_move_from(tutorial_id, x=642))
    received = [*watcher.skipped, last]
    assert not [m for m in received if m.get("type") == "leave"], received
    moves = [m for m in received if m.get("sender") == tutorial_id]
    assert [(m["x"], m["y"], m.get("px")) for m in moves] == [
        (640, 200, True),
        (641, 201, True),
        (642, 202, True),
    ], received
    assert all(m["type"] == "move" for m in moves), received


async def test_a_tutorial_type_field_passes_through_to_tutorial_clients(connect: Connect) -> None:
    tutorial = await connect("websocket", v2=False)
    await tutorial.send({"x": 1, "y": 2})
    first = await tutorial.recv_json()
    real = {"sender": first["sender"], "color": first["color"]}

    await tutorial.send({"x": 641, "y": 201, "type": "move", "note": "mine"})
    echo = await tutorial.recv_json()
    assert echo == {"x": 641, "y": 201, "type": "move", "note": "mine", **real}
