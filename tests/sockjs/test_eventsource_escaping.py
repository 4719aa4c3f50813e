"""EventSource frames survive sockjs-client's `decodeURI` (its eventsource receiver runs it
on every event's data, in the page and in the iframe-eventsource transport alike).

`decode_uri` below follows ECMAScript's decodeURI: `%XX` sequences that form UTF-8 are
decoded, except those of the reserved characters `;/?:@&=+$,#`, and a `%` that does not start
such a sequence is a URIError (the client throws and the message is lost). The messages are
those of sockjs-client's own echo tests ("special chars", "echo utf encoding 0x00-0xFF") and
the cases the issue names ("%20" arriving as a space, a lone "100%").
"""

from __future__ import annotations

import json
import re

import pytest

from cursorshare.sockjs import frames
from cursorshare.sockjs.transports.eventsource import escape_for_decode_uri

_RESERVED = set(";/?:@&=+$,#")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


class URIError(ValueError):
    pass


def decode_uri(data: str) -> str:
    """What ECMAScript's decodeURI makes of ``data``."""
    out: list[str] = []
    i = 0
    raw = data.encode("utf-8")
    while i < len(raw):
        if raw[i : i + 1] != b"%":
            j = raw.find(b"%", i)
            j = len(raw) if j < 0 else j
            out.append(raw[i:j].decode("utf-8"))
            i = j
            continue
        match = _ESCAPE.match(raw, i)
        if match is None:
            raise URIError(f"malformed escape at {i}: {data[i : i + 3]!r}")
        first = int(match.group(1), 16)
        length = 1 if first < 0x80 else 2 if first >> 5 == 6 else 3 if first >> 4 == 14 else 4
        octets = bytearray()
        for k in range(length):
            part = _ESCAPE.match(raw, i + 3 * k)
            if part is None:
                raise URIError("truncated UTF-8 escape")
            octets.append(int(part.group(1), 16))
        try:
            char = octets.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise URIError("invalid UTF-8 escape") from exc
        out.append(raw[i : i + 3 * length].decode() if char in _RESERVED else char)
        i += 3 * length
    return "".join(out)


SPECIAL_CHARS = [
    " ", "\u0000", "\xff", "\xff\x00", "\x00\xff", " \r ", " \n ", " \r\n ", "\r\n", "",
    "message\t", "\tmessage", "message ", " message", "message\r", "\rmessage", "message\n",
    "\nmessage", "message\xff", "\xffmessage", "A", "b", "c", "d", "e", "\ufffd",
    "\ufffd\u0000", "message\ufffd", "\ufffdmessage", "%20",
]  # fmt: skip
BYTE_RANGE = "".join(chr(i) for i in range(257))
PERCENT_CASES = ["100%", "%20", "%", "%%", "50% off", "%E2%82%AC", "%2", "a%0Ab", "%25"]


def test_the_model_of_decode_uri_shows_the_bug_the_escaping_fixes() -> None:
    # Unescaped, "%20" turns into a space and "100%" cannot be decoded at all.
    assert decode_uri('a["%20"]') == 'a[" "]'
    with pytest.raises(URIError):
        decode_uri('a["100%"]')


@pytest.mark.parametrize("message", SPECIAL_CHARS + PERCENT_CASES + [BYTE_RANGE], ids=repr)
def test_every_frame_comes_back_from_decode_uri_unchanged(message: str) -> None:
    frame = frames.encode_messages([message])
    data = escape_for_decode_uri(frame).decode("utf-8")
    assert decode_uri(data) == frame.decode("utf-8")
    assert json.loads(decode_uri(data)[1:]) == [message]


def test_control_characters_of_the_event_framing_are_escaped_as_sockjs_node_does() -> None:
    # JSON never leaves them raw, but the framing does not rely on it.
    assert escape_for_decode_uri(b"a\r\n\x00%") == b"a%0D%0A%00%25"


async def test_eventsource_delivers_percent_signs_escaped_on_the_wire(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("GET", url + "/eventsource")
    assert head.status == 200
    assert await conn.read_chunk() == b"\r\n"
    assert await conn.read_chunk() == b"data: o\r\n\r\n"

    for message in ("100%", "%20", BYTE_RANGE):
        body = json.dumps([message])
        r = await fetch("POST", url + "/xhr_send", body=body)
        assert r.status == 204
        event = await conn.read_chunk()
        assert event.startswith(b"data: ") and event.endswith(b"\r\n\r\n")
        data = event[len(b"data: ") : -4].decode("utf-8")
        assert "\r" not in data and "\n" not in data
        assert json.loads(decode_uri(data)[1:]) == [message]

    r = await fetch("POST", url + "/xhr_send", body='["%20"]')
    assert r.status == 204
    assert await conn.read_chunk() == b'data: a["%2520"]\r\n\r\n'
