"""Fault isolation (issue #10, finding 1): what one client sends never stops delivery to
another room, another client or a later tick.

A lone surrogate escape (``"\\ud800"``) is valid JSON syntax (RFC 8259 section 8.2 allows it;
Python's parser decodes it to a str that UTF-8 cannot encode) but can never be sent on: every
field the app stores or forwards is checked at input, and such a message is refused with
``not JSON`` (v2) or dropped (tutorial). Each case below poisoned every later flush of the
process before the fix: the sender's stored name (or its forwarded fields) made the codec
raise inside `Hub.flush`, so rooms flushed after it in a tick got nothing and newcomers no
welcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cursorshare.hub import Event
from cursorshare.server import HUB
from tests.support.clients import SockJSClient

from .conftest import Connect, is_move_from, welcome_of

# Raw message texts: the backslash escapes reach the server as JSON escapes.
V2_POISON = {
    "name-high-surrogate": r'{"type":"move","x":0.5,"y":0.5,"name":"\ud800"}',
    "name-low-surrogate": r'{"type":"move","x":0.5,"y":0.5,"name":"a\udfffb"}',
    "name-and-huge-number": r'{"type":"move","x":0.5,"y":0.5,"name":"\ud800","z":1e999}',
    "extra-field": r'{"type":"move","x":0.5,"y":0.5,"pad":"\udc00"}',
    "extra-key": r'{"type":"move","x":0.5,"y":0.5,"\ud83d":1}',
    "nested-extra": r'{"type":"move","x":0.5,"y":0.5,"pad":{"a":["\ud800"]}}',
}
TUTORIAL_POISON = {
    "extra-field": r'{"x":1,"y":2,"name":"\ud800"}',
    "extra-key": r'{"x":1,"y":2,"\udbff":"k"}',
    "nested-value": r'{"x":1,"y":2,"e":[{"f":"\udfff"}]}',
    "nested-key": r'{"x":1,"y":2,"e":{"\ud800":0}}',
    "type-field": r'{"x":1,"y":2,"type":"\ud800"}',
    "with-huge-number": r'{"x":1,"y":2,"e":"\ud800","z":1e999}',
}


async def calm_pair(connect: Connect, room: str) -> tuple[SockJSClient, SockJSClient, str]:
    """A watcher and a mover in their own room; the mover's id."""
    watcher = await connect("websocket", room=room)
    await welcome_of(watcher)
    mover = await connect("xhr-streaming", room=room)
    mover_id = str((await welcome_of(mover))["id"])
    return watcher, mover, mover_id


async def assert_rooms_keep_delivering(
    connect: Connect, attacker: SockJSClient, attacker_v2: bool, rounds: int = 4
) -> None:
    """While the attacker keeps moving, another room's moves and welcomes get through."""
    watcher, mover, mover_id = await calm_pair(connect, "calm")
    for k in range(1, rounds + 1):
        # The attacker moves first, so its room is flushed first in the tick.
        if attacker_v2:
            await attacker.send({"type": "move", "x": 0.5, "y": k / 100})
        else:
            await attacker.send({"x": 3, "y": k})
        await mover.send({"type": "move", "x": 0.25, "y": k / 100})
        await watcher.recv_json_until(is_move_from(mover_id, y=k / 100))
    newcomer = await connect("eventsource", room="calm")
    await welcome_of(newcomer)
    # The attacker itself is not cut off either: its own valid move comes back.
    if attacker_v2:
        await attacker.send({"type": "move", "x": 0.75, "y": 0.75})
        await attacker.recv_json_until(lambda m: m.get("type") == "move" and m["x"] == 0.75)
    else:
        await attacker.send({"x": 75, "y": 75})
        await attacker.recv_json_until(lambda m: m.get("x") == 75)
    assert not attacker.ended


@pytest.mark.parametrize("poison", V2_POISON.values(), ids=V2_POISON.keys())
async def test_a_v2_message_that_cannot_be_encoded_is_refused_and_isolated(
    connect: Connect, poison: str
) -> None:
    attacker = await connect("websocket", room="poison")
    await welcome_of(attacker)
    await attacker.send(poison)
    refusal = await attacker.recv_json_until(lambda m: m.get("type") in ("error", "move"))
    assert refusal == {"type": "error", "error": "not JSON"}
    await assert_rooms_keep_delivering(connect, attacker, attacker_v2=True)


@pytest.mark.parametrize("poison", TUTORIAL_POISON.values(), ids=TUTORIAL_POISON.keys())
async def test_a_tutorial_message_that_cannot_be_encoded_is_dropped_and_isolated(
    connect: Connect, poison: str
) -> None:
    attacker = await connect("websocket", room="poison", v2=False)
    await attacker.send(poison)
    await attacker.send({"x": 9, "y": 9})
    echo = await attacker.recv_json_until(lambda m: "sender" in m)
    assert (echo["x"], echo["y"]) == (9, 9), "the poisoned message was passed on"
    await assert_rooms_keep_delivering(connect, attacker, attacker_v2=False)


async def test_flush_failures_are_counted_in_the_metrics(
    server: TestServer, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a room's first failure is logged; /metrics counts every one. (Input validation
    leaves no known way to make a flush fail: the codec is made to fail on a name.)"""
    codec = server.app[HUB].codec
    encode = codec.encode

    def failing_encode(flavour: str, events: Sequence[Event]) -> bytes | None:
        if any(event.data.get("name") == "unlucky" for event in events):
            raise RuntimeError("a bug of ours")
        return encode(flavour, events)

    monkeypatch.setattr(codec, "encode", failing_encode)
    await connect("websocket", room="doomed", name="unlucky")
    watcher, mover, mover_id = await calm_pair(connect, "calm")
    await mover.send({"type": "move", "x": 0.5, "y": 0.5})
    await watcher.recv_json_until(is_move_from(mover_id))
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/metrics")) as response,
    ):
        text = await response.text()
    assert "cursorshare_hub_flush_failures_total 1.0" in text.splitlines(), text
