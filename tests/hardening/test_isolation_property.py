"""Fault isolation as a property (issue #10): no sequence of inputs from one client stops
delivery in another room.

Hypothesis plays a hostile client of the real application: it opens a session with an
arbitrary query (room, name, flavour; percent-encoded bytes, so invalid UTF-8 and encoded
surrogates too), then sends a sequence of SockJS messages (JSON of v2 and tutorial shapes
whose fields, keys and nested values are arbitrary: lone surrogate escapes, numbers past a
double or past 64 bits, NaN and Infinity, deep nesting, odd types), several messages per
frame, raw websocket text frames and binary frames. Then, while the hostile client keeps
moving (a poisoned stored name would poison each of its moves):

- a well-behaved pair in another room (opened once, before the first example) still gets
  every move, and a newcomer there its welcome;
- a newcomer in the hostile client's own room gets its welcome too;
- the hostile client, if still connected, gets its own valid move back;
- nothing is logged at ERROR (a handler that raised, a room whose flush raised).

One server serves every example; shrinking is off (failures stay cheap) and the example
database too (nothing is written into the repository).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from cursorshare.config import Settings
from tests.support.clients import SessionClosed, SockJSClient, WebSocketClient

from .conftest import TIMEOUT, Connect, Served
from .test_fuzz import check_logs

PROPERTY = settings(
    max_examples=80,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow),
)

# -- what a hostile client sends ------------------------------------------------------------

surrogates = st.characters(categories=("Cs",))
#: Short names as a person would type them, with lone surrogates in them.
names_with_surrogates = st.lists(
    surrogates | st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=8
).map("".join)
hostile_strings = st.one_of(
    st.text(max_size=12),
    surrogates,
    names_with_surrogates,
    st.lists(surrogates | st.characters(), min_size=1, max_size=6).map("".join),
)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400), 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_strings,
)
hostile_json = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_strings, inner, max_size=3),
    max_leaves=10,
)
# Mostly valid, so that the rest of the message is what decides its fate.
valid_coordinates = st.floats(0, 1)
coordinates = st.one_of(
    valid_coordinates,
    valid_coordinates,
    valid_coordinates,
    st.integers(-2000, 2000),
    hostile_scalars,
)


def dumps(value: Any) -> str:
    """JSON text; lone surrogates become escapes (which json.loads reads back as such)."""
    return json.dumps(value, allow_nan=True)


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


v2_shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(["move", "move", "move", "jump"]), "x": coordinates, "y": coordinates},
    optional={"name": hostile_strings | hostile_json, "extra": hostile_json},
)
tutorial_shaped = st.fixed_dictionaries(
    {"x": coordinates, "y": coordinates},
    optional={"name": hostile_strings | hostile_json, "type": hostile_json, "e": hostile_json},
)
#: A valid move with one field (or key) hostile: what a careful attacker sends.
one_bad_field = st.tuples(
    st.sampled_from(
        [
            {"type": "move", "x": 0.5, "y": 0.25},
            {"x": 640, "y": 200},
            {"type": "move", "x": 1, "y": 0},
        ]
    ),
    st.sampled_from(["name", "name", "name", "type", "extra", "sender", "color"]) | hostile_strings,
    st.one_of(names_with_surrogates, names_with_surrogates, hostile_json),
).map(lambda t: {**t[0], t[1]: t[2]})
with_hostile_keys = st.dictionaries(hostile_strings, hostile_json, max_size=4)
deep_fields = st.tuples(st.integers(1, 1500), st.sampled_from(["0.5", "1e999", '"\\ud800"'])).map(
    lambda t: '{"type":"move","x":0.5,"y":0.5,"x2":1,"e":' + nested(*t) + "}"
)
deep_tutorial = st.integers(1, 1500).map(lambda d: '{"x":1,"y":2,"e":' + nested(d) + "}")
literal_texts = st.sampled_from(
    [
        '{"type":"move","x":0.5,"y":0.5,"name":"\\ud800"}',
        '{"type":"move","x":1e999,"y":0.5,"name":"\\udfff"}',
        '{"x":1,"y":2,"e":"\\ud800","z":1e999}',
        '{"x":1,"y":2,"\\udbff":1e400}',
        '{"x":1' + "0" * 400 + ',"y":2}',
        '{"type":"move","x":NaN,"y":Infinity}',
        "x" * 5000,
    ]
)
message_texts = st.one_of(
    one_bad_field.map(dumps),
    one_bad_field.map(dumps),
    one_bad_field.map(dumps),
    v2_shaped.map(dumps),
    v2_shaped.map(dumps),
    tutorial_shaped.map(dumps),
    tutorial_shaped.map(dumps),
    with_hostile_keys.map(dumps),
    hostile_json.map(dumps),
    deep_fields,
    deep_tutorial,
    literal_texts,
    st.text(max_size=40),
)
# Frames the protocol layer refuses end the session: messages come first, more often.
actions = st.one_of(
    st.tuples(st.just("message"), message_texts),
    st.tuples(st.just("message"), message_texts),
    st.tuples(st.just("message"), message_texts),
    st.tuples(st.just("batch"), st.lists(message_texts, min_size=2, max_size=4)),
    st.tuples(st.just("frame"), st.text(max_size=40) | message_texts),
    st.tuples(st.just("binary"), st.binary(max_size=40)),
)
query_values = st.one_of(
    st.binary(max_size=12).map(quote_from_bytes),
    st.sampled_from(["%ED%A0%80", "%ED%BF%BF", "%F0%9F%98%80", "%FF", "calm", "lobby", ""]),
    st.from_regex(r"[A-Za-z0-9_.\-]{1,8}", fullmatch=True),
)


@dataclass
class Hostile:
    v2: bool
    room: str
    name: str
    actions: list[tuple[str, Any]]


hostiles = st.builds(
    Hostile,
    v2=st.booleans(),
    room=st.sampled_from(["hostile", "hostile", "hostile", "calm"]) | query_values,
    name=query_values,
    actions=st.lists(actions, max_size=10),
)

# -- the bystanders ---------------------------------------------------------------------------


@dataclass
class Bystanders:
    served: Served
    watcher: SockJSClient
    mover: SockJSClient
    mover_id: str
    examples: int = 0


@pytest.fixture
async def bystanders(cursor_server, connect: Connect) -> Bystanders:
    served = await cursor_server(Settings(disconnect_delay=0.5, heartbeat_delay=5, tick_ms=30))
    watcher = await connect("websocket", served.base_url, "v=2&room=calm&name=watcher")
    await watcher.recv_json_until(lambda m: m.get("type") == "welcome")
    mover = await connect("websocket", served.base_url, "v=2&room=calm&name=mover")
    mover_id = (await mover.recv_json_until(lambda m: m.get("type") == "welcome"))["id"]
    return Bystanders(served, watcher, mover, mover_id)


#: What sending to a session the server has just closed may raise on the client's side.
GONE = (SessionClosed, ConnectionError, aiohttp.ClientError)


async def act(client: SockJSClient, action: tuple[str, Any]) -> None:
    kind, value = action
    assert isinstance(client, WebSocketClient) and client.ws is not None
    if kind == "message":
        await client.send(value)
    elif kind == "batch":
        await client.send_many(value)
    elif kind == "frame":  # as a text frame, unless it holds what UTF-8 cannot encode
        try:
            await client.ws.send_str(value)
        except UnicodeEncodeError:
            await client.ws.send_bytes(value.encode("utf-8", "surrogatepass"))
    else:
        await client.ws.send_bytes(value)


async def welcome_in(connect: Connect, served: Served, room: str) -> None:
    newcomer = await connect("websocket", served.base_url, f"v=2&room={room}")
    await newcomer.recv_json_until(lambda m: m.get("type") == "welcome", TIMEOUT)
    await newcomer.close()


@PROPERTY
@given(hostile=hostiles)
@example(
    hostile=Hostile(
        True, "hostile", "", [("message", '{"type":"move","x":0,"y":0,"name":"\\ud800"}')]
    )
)
@example(
    hostile=Hostile(False, "hostile", "%ED%A0%80", [("message", '{"x":1,"y":2,"e":"\\udc00"}')])
)
async def test_no_input_from_one_client_stops_delivery_elsewhere(
    bystanders: Bystanders, connect: Connect, caplog: pytest.LogCaptureFixture, hostile: Hostile
) -> None:
    by = bystanders
    by.examples += 1
    query = f"room={hostile.room}&name={hostile.name}" + ("&v=2" if hostile.v2 else "")
    # A fresh session per example (the last one may have been closed for what it sent).
    attacker = await connect("websocket", by.served.base_url, query)
    for action in hostile.actions:
        if attacker.ended:
            break
        with contextlib.suppress(*GONE):
            await act(attacker, action)

    for k in range(3):
        mark = by.examples + k / 10
        if not attacker.ended:
            # The attacker keeps moving: what it stored must not poison its later moves.
            with contextlib.suppress(*GONE):
                await attacker.send({"type": "move", "x": 0.5, "y": 0.5, "k": mark})
        await by.mover.send({"type": "move", "x": 0.5, "y": mark / 1000})
        await by.watcher.recv_json_until(
            lambda m, mark=mark: m.get("sender") == by.mover_id and m.get("y") == mark / 1000,
            TIMEOUT,
        )
    await welcome_in(connect, by.served, "calm")
    await welcome_in(connect, by.served, "hostile")
    if not attacker.ended:
        with contextlib.suppress(*GONE):  # but not TimeoutError: an open session gets it
            await attacker.send({"type": "move", "x": 0.25, "y": 0.75, "last": by.examples})
            await attacker.recv_json_until(
                lambda m: m.get("x") in (0.25, 250) and m.get("y") in (0.75, 750), TIMEOUT
            )
    await attacker.close()
    for client in (by.watcher, by.mover):
        assert not client.ended, (client, client.closed_with, client.error)
        client.pending()  # drop the room's traffic nobody reads
    check_logs(caplog)
