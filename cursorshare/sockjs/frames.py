"""SockJS frames: encoding what the server sends and decoding what clients send.

A frame is the unit every transport carries, each in its own framing:

- ``o`` opens a session, ``h`` is a heartbeat,
- ``a[...]`` carries a JSON array of messages (each message a string),
- ``c[code,"reason"]`` closes the session and is repeated to later requests.

Message frames are encoded once and the same bytes are written to every receiver, so
broadcasting N sessions costs one encode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

OPEN = b"o"
HEARTBEAT = b"h"

# Characters that sockjs-client and browsers mangle unless they arrive \u-escaped
# (sockjs-protocol's `escapable_by_server`, above the control range orjson already escapes):
# U+200C-U+200F, U+2028-U+202F, U+2060-U+206F and U+FFF0-U+FFFF, matched on their UTF-8 bytes.
_NEEDS_ESCAPE = re.compile(rb"\xe2\x80[\x8c-\x8f\xa8-\xaf]|\xe2\x81[\xa0-\xaf]|\xef\xbf[\xb0-\xbf]")


def _escape_char(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


def _escape(encoded: bytes) -> bytes:
    # Pure ASCII (the common case for cursor traffic) cannot hold any of these characters.
    if encoded.isascii():
        return encoded
    return _NEEDS_ESCAPE.sub(_escape_char, encoded)


def encode_messages(messages: Sequence[str]) -> bytes:
    """One ``a[...]`` frame carrying ``messages`` in order."""
    return b"a" + _escape(orjson.dumps(list(messages)))


def merge_message_frames(frames: Sequence[bytes]) -> bytes:
    """Join queued ``a[...]`` frames into one, without decoding them."""
    if len(frames) == 1:
        return frames[0]
    return b"a[" + b",".join(frame[2:-1] for frame in frames if len(frame) > 3) + b"]"


def close_frame(code: int, reason: str) -> bytes:
    return b"c" + _escape(orjson.dumps([code, reason]))


def json_string(frame: bytes) -> bytes:
    """A frame as a JSON string literal, for the script-based transports (jsonp, htmlfile).

    ``<`` is escaped too, so a message can never close the surrounding ``<script>``.
    """
    return _escape(orjson.dumps(frame.decode())).replace(b"<", b"\\u003c")


class BrokenFrame(ValueError):
    """A client sent something that is not JSON, or not the JSON SockJS expects."""


class NotAnArray(BrokenFrame):
    """Valid JSON that is not an array at all (sockjs-node answers it "Payload expected.")."""


def decode_messages(payload: bytes | str, *, allow_single: bool = False) -> list[str]:
    """Messages from a client frame: a JSON array of strings.

    ``allow_single`` accepts one bare JSON string too, as websocket clients may send.
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BrokenFrame("broken JSON") from exc
    if isinstance(value, str) and allow_single:
        return [value]
    if not isinstance(value, list):
        raise NotAnArray("not an array")
    if not all(isinstance(item, str) for item in value):
        raise BrokenFrame("not an array of strings")
    return value
