"""The cursor protocol (docs/protocol.md): validating what clients send, shaping what they get.

Two flavours of client share rooms: ``v2`` (the web app; normalised coordinates, welcome,
joins and leaves) and ``tutorial`` (pixel moves passed through unchanged and echoed to
everyone, the sender included). The codec encodes one payload per flavour per tick.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..hub import JSON, Event, Kind
from ..sockjs import frames

log = logging.getLogger("cursorshare.cursors")

V2 = "v2"
TUTORIAL = "tutorial"

DEFAULT_ROOM = "lobby"
MAX_NAME = 32
#: Tutorial pixel coordinates beyond this are refused (no screen is a million pixels wide).
MAX_PIXELS = 1e6
#: v2 moves reach tutorial clients in pixels of a page this size.
TUTORIAL_PAGE = 1000

#: Objects and arrays nested deeper than this are refused as "not JSON" (CursorApp's
#: ``max_depth``). Far below every parser's own limit (orjson's 1024 levels, the standard
#: parser's recursion limit, which is 1000 frames on 3.11 but ~10 000 C levels on 3.12+), so
#: the answer never depends on the parser or the Python version; and far below the 254 levels
#: orjson encodes, so whatever passes can be sent on, wrapped in batches and backplane messages.
MAX_DEPTH = 32

_ROOM = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: Unicode categories a name may not hold: controls (Cc), format characters (Cf: bidi
#: overrides and isolates, zero-width spaces and joiners, the BOM, tag characters...), lone
#: surrogates (Cs, which a JSON escape can make), private use (Co), unassigned (Cn), and line
#: and paragraph separators (Zl, Zp). Each either shows nothing or changes how the rest of the
#: label reads, so a name could pass for another one (U+202E turns "Ada\u202eevE" around).
_UNFIT_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
#: Characters of other categories that show nothing (Unicode's Default_Ignorable_Code_Point
#: outside Cf, and the Hangul fillers that render blank): a name of them looks empty, or like
#: another name. The emoji presentation selectors U+FE0E and U+FE0F stay allowed (they only
#: pick how the character before them is drawn).
_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0d\uffa0"
    "\U000e0100-\U000e01ef]"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Outside a string, a bracket; or a whole string (closing quote optional, so that an
#: unterminated one ends the scan instead of making the regex backtrack).
_BRACKET_OR_STRING = re.compile(r'[\[\]{}]|"(?:[^"\\]|\\.)*"?', re.DOTALL)
#: orjson encodes integers from i64's minimum to u64's maximum.
_INT_RANGE = (-(2**63), 2**64 - 1)

#: How a cursor is drawn; moves say which (the default: mouse).
POINTERS = ("mouse", "touch", "pen")
#: The statuses a client sets; ``reconnecting`` is the server's (its session dropped).
CLIENT_STATUSES = ("active", "away")
ACTIVE, AWAY, RECONNECTING = "active", "away", "reconnecting"

#: Label colours, handed out per room (least used first, ties in this order). Each is either dark
#: (white ink at >= 4.5:1 WCAG contrast, relative luminance <= 0.18) or light (dark ink at >= 4.5:1,
#: luminance > 0.4), never in between, where an ink picked by a luminance threshold may fail. The
#: order puts far-apart hues first, so a small room gets clearly different ones.
PALETTE = (
    "#c62828", "#1565c0", "#ffb300", "#2e7d32", "#6a1b9a", "#4fc3f7", "#ad1457", "#9ccc65",
    "#00695c", "#f48fb1", "#283593", "#fdd835", "#5d4037", "#80cbc4", "#ffab91", "#e1bee7",
)  # fmt: skip


class BadMessage(ValueError):
    """A client message the server refuses; ``str()`` is the text the client is told."""


def valid_room(room: str | None) -> str | None:
    """The room name, the default when none is given, None when it is malformed."""
    if room is None or room == "":
        return DEFAULT_ROOM
    return room if _ROOM.fullmatch(room) else None


def clean_name(name: object) -> str:
    if not isinstance(name, str):
        raise BadMessage("bad name")
    name = name.strip()
    if len(name) > MAX_NAME or not _fit_for_name(name):
        raise BadMessage("bad name")
    return name


def _fit_for_name(name: str) -> bool:
    """Whether every character of ``name`` shows, and none changes how the others read."""
    if name.isascii():
        return name.isprintable()  # ASCII: refuses exactly the controls
    if _INVISIBLE.search(name):
        return False
    return not any(unicodedata.category(char) in _UNFIT_CATEGORIES for char in name)


def _number(value: object, low: float, high: float) -> float:
    # bool is an int in Python but never a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadMessage("bad coordinates")
    try:
        # A huge integer (from the standard parser) overflows the float conversion.
        in_range = math.isfinite(value) and low <= value <= high
    except OverflowError:
        in_range = False
    if not in_range:
        raise BadMessage("bad coordinates")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _nested_deeper_than(raw: str, max_depth: int) -> bool:
    """Whether the text opens more than ``max_depth`` brackets at once (strings skipped)."""
    depth = 0
    for token in _BRACKET_OR_STRING.findall(raw):
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _within_depth(value: dict[str, Any] | list[Any], max_depth: int) -> bool:
    """Whether ``value`` nests at most ``max_depth`` levels (itself included)."""
    containers: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while containers:
        container, depth = containers.pop()
        children = container.values() if isinstance(container, dict) else container
        for child in children:
            if isinstance(child, dict | list):
                if depth >= max_depth:
                    return False
                containers.append((child, depth + 1))
    return True


def _check_fallback_value(value: object) -> bool:
    """Refuses a string (key or value, at any depth) that UTF-8 cannot encode (a lone
    surrogate); returns whether every number encodes as itself (finite, integers within 64
    bits), which matters only where the message is passed on. Only the standard parser
    makes such values: orjson refuses lone surrogates, and its numbers always fit."""
    fit = True
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise BadMessage("not JSON")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            fit = fit and math.isfinite(item)
        elif isinstance(item, int):
            fit = fit and _INT_RANGE[0] <= item <= _INT_RANGE[1]
    return fit


def _object(raw: str, max_depth: int) -> tuple[dict[str, Any], bool]:
    """The message: a JSON object nesting at most ``max_depth`` levels, whose strings UTF-8
    can encode; and whether its numbers encode as they came (`_check_fallback_value`)."""
    try:
        value = orjson.loads(raw)
        numbers_fit = True
    except orjson.JSONDecodeError:
        # orjson refuses numbers beyond a double (1e999), which are JSON all the same: the
        # standard parser reads them as infinities, for the coordinate check to refuse. Its
        # nesting limit differs between Python versions, so it never sees deep nesting.
        if _nested_deeper_than(raw, max_depth):
            raise BadMessage("not JSON") from None
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise BadMessage("not JSON") from exc
        numbers_fit = _check_fallback_value(value)
    if not isinstance(value, dict):
        raise BadMessage("not JSON")
    # Fewer brackets than levels allowed (brackets in strings counted too): no walk needed.
    if raw.count("[") + raw.count("{") > max_depth and not _within_depth(value, max_depth):
        raise BadMessage("not JSON")
    return value, numbers_fit


@dataclass(frozen=True, slots=True)
class Move:
    x: float
    y: float
    #: None when the message does not set them.
    name: str | None = None
    pointer: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    status: str


@dataclass(frozen=True, slots=True)
class Bye:
    pass


V2Message = Move | Status | Bye


def parse_v2(raw: str, max_depth: int = MAX_DEPTH) -> V2Message:
    """A v2 client's message: a move, a presence status, or a bye."""
    message, _ = _object(raw, max_depth)  # only the fields below are kept: checked below
    kind = message.get("type")
    if kind == "move":
        x = _number(message.get("x"), 0.0, 1.0)
        y = _number(message.get("y"), 0.0, 1.0)
        name = clean_name(message["name"]) if "name" in message else None
        pointer = message.get("pointer")
        if pointer is not None and pointer not in POINTERS:
            raise BadMessage("bad pointer")
        return Move(x, y, name, pointer)
    if kind == "presence":
        status = message.get("status")
        if status not in CLIENT_STATUSES:
            raise BadMessage("bad status")
        return Status(status)
    if kind == "bye":
        return Bye()
    raise BadMessage("unknown type")


def parse_v2_move(raw: str, max_depth: int = MAX_DEPTH) -> tuple[float, float, str | None]:
    """``(x, y, name)`` of a v2 move; name is None when the message does not set it."""
    message = parse_v2(raw, max_depth)
    if not isinstance(message, Move):
        raise BadMessage("unknown type")
    return message.x, message.y, message.name


def parse_tutorial_move(raw: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A tutorial move: the message itself, with finite pixel ``x`` and ``y``."""
    message, numbers_fit = _object(raw, max_depth)
    _number(message.get("x"), -MAX_PIXELS, MAX_PIXELS)
    _number(message.get("y"), -MAX_PIXELS, MAX_PIXELS)
    if not numbers_fit:  # its extra fields pass through: they must encode as they came
        raise BadMessage("not JSON")
    return message


def error(text: str) -> str:
    return orjson.dumps({"type": "error", "error": text}).decode()


def welcome(
    member: JSON, room: str, *, resume: str, resumed: bool, grace: float, users: list[JSON]
) -> str:
    """A v2 client's welcome: its identity (``member``: id, color, name), its resume key
    (told to it alone), and everyone else present."""
    return orjson.dumps(
        {
            "type": "welcome",
            "id": member["id"],
            "color": member["color"],
            "name": member["name"],
            "room": room,
            "resume": resume,
            "resumed": resumed,
            "grace": grace,
            "users": users,
        }
    ).decode()


def _from_tutorial(event: Event) -> bool:
    # Decided by the sender's flavour, never by the message: a tutorial message passes its
    # fields through, `type` included.
    return bool(event.state.get("px"))


def _for_v2(event: Event) -> JSON | None:
    data = event.data
    if event.kind is Kind.MOVE and _from_tutorial(event):
        return {
            "type": "move",
            "sender": event.sender,
            "color": data.get("color"),
            "x": data.get("x"),
            "y": data.get("y"),
            "px": True,
        }
    return data


def _for_tutorial(event: Event) -> JSON | None:
    if event.kind is not Kind.MOVE:
        return None  # the tutorial client knows only moves
    data = event.data
    if _from_tutorial(event):
        return data
    return {
        "x": round(data["x"] * TUTORIAL_PAGE),
        "y": round(data["y"] * TUTORIAL_PAGE),
        "sender": event.sender,
        "color": data["color"],
    }


class CursorCodec:
    """Encodes a room's batch once per flavour, as one SockJS message frame."""

    def encode(self, flavour: str, events: Sequence[Event]) -> bytes | None:
        shape = _for_v2 if flavour == V2 else _for_tutorial
        messages = [
            orjson.dumps(message).decode() for message in map(shape, events) if message is not None
        ]
        return frames.encode_messages(messages) if messages else None
