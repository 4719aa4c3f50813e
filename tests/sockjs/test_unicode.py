"""JSON unicode encoding (spec: JSONEncoding): the server escapes the characters browsers and
proxies mangle, and decodes whatever the client escaped."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp

# Characters the server must send \u-escaped (lowercase hex), per the spec; only 255..65535
# are checked.
SERVER_ESCAPED = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")

# Characters the client escapes before sending (sockjs-client's list), as code point ranges.
# The official file's `escapable_by_client` means the same list but, written as `[\\\"...`
# inside a Python string, its regex loses the backslash: its killer string is this one without
# U+005C. A backslash escaped as \u005c is valid JSON all the same, so ours sends it too.
CLIENT_ESCAPED_RANGES = [
    (0x22, 0x22), (0x5C, 0x5C), (0x00, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD),
    (0x600, 0x604), (0x70F, 0x70F), (0x17B4, 0x17B5), (0x2000, 0x20FF), (0xFEFF, 0xFEFF),
    (0xFFF0, 0xFFFF), (0x300, 0x333), (0x33D, 0x346), (0x34A, 0x34C), (0x350, 0x352),
    (0x357, 0x358), (0x35C, 0x362), (0x374, 0x374), (0x37E, 0x37E), (0x387, 0x387),
    (0x591, 0x5AF), (0x5C4, 0x5C4), (0x610, 0x617), (0x653, 0x654), (0x657, 0x65B),
    (0x65D, 0x65E), (0x6DF, 0x6E2), (0x6EB, 0x6EC), (0x730, 0x730), (0x732, 0x733),
    (0x735, 0x736), (0x73A, 0x73A), (0x73D, 0x73D), (0x73F, 0x741), (0x743, 0x743),
    (0x745, 0x745), (0x747, 0x747), (0x7EB, 0x7F1), (0x951, 0x951), (0x958, 0x95F),
    (0x9DC, 0x9DD), (0x9DF, 0x9DF), (0xA33, 0xA33), (0xA36, 0xA36), (0xA59, 0xA5B),
    (0xA5E, 0xA5E), (0xB5C, 0xB5D), (0xE38, 0xE39), (0xF43, 0xF43), (0xF4D, 0xF4D),
    (0xF52, 0xF52), (0xF57, 0xF57), (0xF5C, 0xF5C), (0xF69, 0xF69), (0xF72, 0xF76),
    (0xF78, 0xF78), (0xF80, 0xF83), (0xF93, 0xF93), (0xF9D, 0xF9D), (0xFA2, 0xFA2),
    (0xFA7, 0xFA7), (0xFAC, 0xFAC), (0xFB9, 0xFB9), (0x1939, 0x193A), (0x1A17, 0x1A17),
    (0x1B6B, 0x1B6B), (0x1CDA, 0x1CDB), (0x1DC0, 0x1DCF), (0x1DFC, 0x1DFC), (0x1DFE, 0x1DFE),
    (0x1F71, 0x1F71), (0x1F73, 0x1F73), (0x1F75, 0x1F75), (0x1F77, 0x1F77), (0x1F79, 0x1F79),
    (0x1F7B, 0x1F7B), (0x1F7D, 0x1F7D), (0x1FBB, 0x1FBB), (0x1FBE, 0x1FBE), (0x1FC9, 0x1FC9),
    (0x1FCB, 0x1FCB), (0x1FD3, 0x1FD3), (0x1FDB, 0x1FDB), (0x1FE3, 0x1FE3), (0x1FEB, 0x1FEB),
    (0x1FEE, 0x1FEF), (0x1FF9, 0x1FF9), (0x1FFB, 0x1FFB), (0x1FFD, 0x1FFD), (0x20D0, 0x20D1),
    (0x20D4, 0x20D7), (0x20E7, 0x20E9), (0x2126, 0x2126), (0x212A, 0x212B), (0x2329, 0x232A),
    (0x2ADC, 0x2ADC), (0x302B, 0x302C), (0xAAB2, 0xAAB3), (0xF900, 0xFA0D), (0xFA10, 0xFA10),
    (0xFA12, 0xFA12), (0xFA15, 0xFA1E), (0xFA20, 0xFA20), (0xFA22, 0xFA22), (0xFA25, 0xFA26),
    (0xFA2A, 0xFA2D), (0xFA30, 0xFA6D), (0xFA70, 0xFAD9), (0xFB1D, 0xFB1D), (0xFB1F, 0xFB1F),
    (0xFB2A, 0xFB36), (0xFB38, 0xFB3C), (0xFB3E, 0xFB3E), (0xFB40, 0xFB41), (0xFB43, 0xFB44),
    (0xFB46, 0xFB4E),
]  # fmt: skip

CLIENT_ESCAPED = sorted({cp for lo, hi in CLIENT_ESCAPED_RANGES for cp in range(lo, hi + 1)})

# What the server must put on the wire for the server-escaped characters: a JSON string.
SERVER_KILLER = [cp for cp in range(255, 65536) if SERVER_ESCAPED.match(chr(cp))]
SERVER_KILLER_ESC = '"' + "".join(f"\\u{cp:04x}" for cp in SERVER_KILLER) + '"'
# What a client sends: every client-escaped character, escaped.
CLIENT_KILLER_ESC = '"' + "".join(f"\\u{cp:04x}" for cp in CLIENT_ESCAPED) + '"'


def test_killer_strings_are_what_the_spec_describes():
    assert 0x200C in SERVER_KILLER and 0xFFFF in SERVER_KILLER and 0x1F not in SERVER_KILLER
    assert len(SERVER_KILLER) == 44 and len(CLIENT_ESCAPED) == 1093 + 1  # official + backslash
    assert 0x5C in CLIENT_ESCAPED and 0x22 in CLIENT_ESCAPED
    assert not any(0xD800 <= cp <= 0xDFFF for cp in CLIENT_ESCAPED)


async def test_xhr_server_escapes_characters_it_must_encode(fetch, sid):
    url = f"/echo/000/{sid}"
    r = await fetch("POST", url + "/xhr")
    assert r.body == b"o\n"
    assert r.status == 200

    # Sent raw (UTF-8), not escaped.
    payload = '["' + json.loads(SERVER_KILLER_ESC) + '"]'
    r = await fetch("POST", url + "/xhr_send", body=payload)
    assert r.status == 204

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    # Skip the `a[` framing and the closing `]`.
    assert r.text.strip()[2:-1] == SERVER_KILLER_ESC


async def test_xhr_server_decodes_characters_the_client_escaped(fetch, sid):
    url = f"/echo/000/{sid}"
    r = await fetch("POST", url + "/xhr")
    assert r.body == b"o\n"
    assert r.status == 200

    r = await fetch("POST", url + "/xhr_send", body="[" + CLIENT_KILLER_ESC + "]")
    assert r.status == 204

    r = await fetch("POST", url + "/xhr")
    assert r.status == 200
    received = r.text.strip()[2:-1]
    assert json.loads(received) == json.loads(CLIENT_KILLER_ESC)


async def test_websocket_server_escapes_characters_it_must_encode(ws_connect, sid):
    ws = await ws_connect(f"/echo/000/{sid}/websocket")
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.data == "o"
    await ws.send_str('["' + json.loads(SERVER_KILLER_ESC) + '"]')
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type is aiohttp.WSMsgType.TEXT
    assert msg.data == "a[" + SERVER_KILLER_ESC + "]"


async def test_websocket_server_decodes_characters_the_client_escaped(ws_connect, sid):
    ws = await ws_connect(f"/echo/000/{sid}/websocket")
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.data == "o"
    await ws.send_str("[" + CLIENT_KILLER_ESC + "]")
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type is aiohttp.WSMsgType.TEXT
    assert json.loads(msg.data[1:]) == [json.loads(CLIENT_KILLER_ESC)]


async def test_non_ascii_text_round_trips_on_xhr(fetch, sid):
    url = f"/echo/000/{sid}"
    assert (await fetch("POST", url + "/xhr")).body == b"o\n"
    text = "zaż\u00f3łć gęślą jaźń \u4e2d\u6587 \U0001f600"
    assert (await fetch("POST", url + "/xhr_send", body=json.dumps([text]))).status == 204
    r = await fetch("POST", url + "/xhr")
    assert r.text.endswith("\n") and r.text.startswith("a")
    assert json.loads(r.text[1:]) == [text]
