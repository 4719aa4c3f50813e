"""Fuzzing every input path with hypothesis: bodies, frames, app messages, callbacks, URLs.

Properties, for every example:

- the server answers within bounds and keeps serving: a control session (opened before the
  first example, never touched by the fuzzer) still round-trips a message afterwards;
- no 500 except the spec's own texts ("Payload expected.", "Broken JSON encoding.", the
  two callback errors), and never a traceback in any body;
- where the outcome is decidable (a JSON array of strings, say), it is the documented one;
- nothing is logged at ERROR (a handler that raised, a callback that failed).

One server per test function serves every example of it (hence the suppressed
function-scoped-fixture health check); shrinking is off to keep failures cheap, and the
example database is off so nothing is written into the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import http_exceptions
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from cursorshare.config import Settings
from tests.support.clients import SockJSClient

from .conftest import TIMEOUT, Connect, Served, echo_round_trip

MAX = 4096  # max_message_size of the fuzzed echo endpoint

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow),
)

#: The only 500 answers the spec has; anything else is a crash.
SPEC_500 = {
    "Payload expected.",
    "Broken JSON encoding.",
    '"callback" parameter required',
    'invalid "callback" parameter',
}
#: What the cursor app may tell a v2 client about a refused message.
APP_ERRORS = {"not JSON", "unknown type", "bad coordinates", "bad name", "message too large"}
_CALLBACK = re.compile(r"[A-Za-z0-9_.\-]{1,32}")


def check_answer(status: int, text: str, allowed: set[int]) -> None:
    assert "Traceback" not in text, text
    if status == 500:
        assert text in SPEC_500, f"unexpected 500: {text!r}"
    assert status in allowed, (status, text)


def _client_error(record: logging.LogRecord) -> bool:
    """aiohttp's own log line for a request it could not parse (answered 400): the client's
    fault, logged by aiohttp before any handler of ours runs."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(exc, http_exceptions.BadHttpMessage)


def check_logs(caplog: pytest.LogCaptureFixture) -> None:
    """No ERROR from our code, from a handler (aiohttp logs what escapes one), or from a
    failed event-loop callback."""
    errors = [
        f"{r.name}: {r.getMessage()} {r.exc_text or r.exc_info or ''}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and not _client_error(r)
    ]
    assert not errors, errors


# --------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any) -> str:
    """JSON, NaN and Infinity included (which are not JSON: good fuzz)."""
    return json.dumps(value, allow_nan=True)


deep_nesting = st.integers(1, 1100).map(lambda d: "[" * d + "]" * d) | st.integers(1, 600).map(
    lambda d: '{"a":' * d + "1" + "}" * d
)
huge_numbers = st.integers(-(10**500), 10**500).map(str) | st.sampled_from(
    ["1e400", "-1e400", "1e-400", "9" * 400, "0." + "0" * 400 + "1", "-0", "[1e999]"]
)
odd_texts = st.sampled_from(
    [
        "",
        " ",
        "[",
        "]",
        '["a"',
        '["a",]',
        '["a"] ["b"]',
        "[null]",
        '[""]',
        '"just a string"',
        '["\\ud800"]',
        '["\\udc80\\ud800"]',
        '["\\ud83d\\ude00"]',
        '["\\u2028\\u2029\\ufff0"]',
        '["</script><script>alert(1)</script>"]',
        '["\\u0000"]',
        '\ufeff["bom"]',
        '["a"]\x00',
        "NaN",
        "[NaN]",
        "Infinity",
        "{}",
        '{"a":1}',
    ]
)
frame_texts = st.one_of(
    st.lists(st.text(max_size=40), max_size=5).map(json.dumps),
    st.lists(st.text(max_size=40), max_size=5).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.text(max_size=40).map(json.dumps),
    json_values.map(dumps),
    st.text(max_size=80),
    odd_texts,
    deep_nesting,
    huge_numbers,
)


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8


payloads = st.one_of(
    frame_texts.map(to_bytes),
    st.binary(max_size=200),
    st.integers(MAX - 100, MAX + 100).map(lambda n: b'["' + b"a" * n + b'"]'),
)

_UNDECIDED = object()


def expected_messages(payload: bytes, *, allow_single: bool) -> Any:
    """The messages a SockJS frame carries; None when it is broken; _UNDECIDED when JSON
    parsers may disagree (lone surrogates, which strict parsers refuse)."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    if any(re.search("[\ud800-\udfff]", item) for item in value):
        return _UNDECIDED
    return value


def _not_an_array_answer(payload: bytes) -> str | None:
    """The 500 text for a body that is not an array of strings: "Payload expected." for JSON
    that is not an array (sockjs-node's xhr_send), "Broken JSON encoding." for the rest; None
    when strict parsers may disagree with Python's about it being JSON at all (NaN, numbers
    beyond 64 bits or doubles, lone surrogates)."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "Broken JSON encoding."
    if isinstance(value, list):
        return "Broken JSON encoding."
    return "Payload expected." if _portable(value) else None


def _portable(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not re.search("[\ud800-\udfff]", value)
    if isinstance(value, list):
        return all(_portable(item) for item in value)
    return all(_portable(k) and _portable(v) for k, v in value.items())


# --------------------------------------------------------------------------- echo endpoint


@dataclass
class EchoFuzz:
    served: Served
    control: SockJSClient
    http: aiohttp.ClientSession
    examples: int = 0

    async def check_still_serving(self, caplog: pytest.LogCaptureFixture) -> None:
        self.examples += 1
        await echo_round_trip(self.control, f"control {self.examples}")
        check_logs(caplog)


@pytest.fixture
async def echo_fuzz(echo_server, connect: Connect, http: aiohttp.ClientSession) -> EchoFuzz:
    served = await echo_server(max_message_size=MAX, disconnect_delay=0.5)
    control = await connect("websocket", served.base_url)
    return EchoFuzz(served, control, http)


def new_id() -> str:
    return secrets.token_hex(6)


@FUZZ
@given(
    payload=payloads,
    content_type=st.sampled_from(
        [
            None,
            "text/plain;charset=UTF-8",
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain; charset=latin-1",
        ]
    ),
)
@example(payload=b"", content_type=None)
@example(payload=b'["\xff"]', content_type=None)
async def test_fuzz_xhr_send(
    echo_fuzz: EchoFuzz, caplog: pytest.LogCaptureFixture, payload: bytes, content_type: str | None
) -> None:
    fz, session = echo_fuzz, new_id()
    async with fz.http.post(fz.served.url(f"/000/{session}/xhr")) as response:
        assert await response.text() == "o\n"
    headers = {"Content-Type": content_type} if content_type else {}
    url = fz.served.url(f"/000/{session}/xhr_send")
    async with fz.http.post(url, data=payload, headers=headers) as response:
        status, text = response.status, await response.text()
    check_answer(status, text, {204, 413, 500})
    expected = expected_messages(payload, allow_single=False)
    if len(payload) > MAX:
        assert (status, text) == (413, "Payload too large.")
    elif not payload:
        assert (status, text) == (500, "Payload expected.")
    elif expected is None:
        answer = _not_an_array_answer(payload)
        assert status == 500
        assert text == answer if answer else text in ("Payload expected.", "Broken JSON encoding.")
    elif expected is not _UNDECIDED:
        assert status == 204, text
        if expected:  # what was accepted is delivered, unchanged and in order
            async with fz.http.post(fz.served.url(f"/000/{session}/xhr")) as response:
                frame = await response.text()
            assert frame.startswith("a") and json.loads(frame[1:]) == expected
    await fz.check_still_serving(caplog)


@FUZZ
@given(
    field=st.sampled_from(["d", "D", "x", ""]),
    payload=payloads,
    form=st.booleans(),
    raw_form=st.binary(max_size=100),
)
@example(field="d", payload=b"", form=True, raw_form=b"")
@example(field="d", payload=b"%FF%FE", form=True, raw_form=b"")
async def test_fuzz_jsonp_send(
    echo_fuzz: EchoFuzz,
    caplog: pytest.LogCaptureFixture,
    field: str,
    payload: bytes,
    form: bool,
    raw_form: bytes,
) -> None:
    fz, session = echo_fuzz, new_id()
    async with fz.http.get(fz.served.url(f"/000/{session}/jsonp?c=cb")) as response:
        assert await response.text() == '/**/cb("o");\r\n'
    if form:
        # A form as a browser would post it, or as a broken one would (raw bytes appended).
        body = field.encode() + b"=" + payload + (b"&" + raw_form if raw_form else b"")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        body, headers = payload, {"Content-Type": "text/plain"}
    url = fz.served.url(f"/000/{session}/jsonp_send")
    async with fz.http.post(url, data=body, headers=headers) as response:
        status, text = response.status, await response.text()
    check_answer(status, text, {200, 413, 500})
    if status == 200:
        assert text == "ok"
    if len(body) > MAX:
        assert (status, text) == (413, "Payload too large.")
    await fz.check_still_serving(caplog)


async def _read_until_sentinel(
    ws: aiohttp.ClientWebSocketResponse, sentinel: str, framed: bool
) -> tuple[list[str], int | None]:
    """Messages received until the sentinel comes back, and the close code if it closed."""
    messages: list[str] = []
    while True:
        message = await ws.receive(TIMEOUT)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return messages, ws.close_code
        assert message.type is aiohttp.WSMsgType.TEXT, message
        data: str = message.data
        if not framed:
            if data == sentinel:
                return messages, None
            messages.append(data)
            continue
        if data.startswith("c"):
            messages.append(data)
            continue
        assert data.startswith("a"), data
        for item in json.loads(data[1:]):
            if item == sentinel:
                return messages, None
            messages.append(item)


@FUZZ
@given(payload=payloads, binary=st.booleans())
@example(payload=b"", binary=False)
@example(payload=b"\xff\xfe", binary=False)
@example(payload=b'"single"', binary=True)
async def test_fuzz_websocket_frames(
    echo_fuzz: EchoFuzz, caplog: pytest.LogCaptureFixture, payload: bytes, binary: bool
) -> None:
    fz = echo_fuzz
    async with fz.http.ws_connect(fz.served.ws_url(f"/000/{new_id()}/websocket")) as ws:
        assert (await ws.receive(TIMEOUT)).data == "o"
        opcode = aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT
        await ws.send_frame(payload, opcode)
        if not ws.closed:
            with contextlib.suppress(ConnectionError):  # closed already: the code tells why
                await ws.send_str('["sentinel"]')
        messages, code = await _read_until_sentinel(ws, "sentinel", framed=True)
    expected = expected_messages(payload, allow_single=True)
    valid_utf8 = _is_utf8(payload)
    if len(payload) > MAX:
        assert code == 1009, (code, messages[:3])
    elif len(payload) == MAX:
        assert code in (None, 1009)  # the boundary is test_limits' business
    elif not binary and not valid_utf8:
        assert code == 1007, (code, messages[:3])  # invalid UTF-8 in a text frame
    elif not payload:
        assert (messages, code) == ([], None)
    elif expected is None:
        # As sockjs-protocol's test_broken_json: no SockJS frame, the connection just ends.
        assert (messages, code) == ([], 3001), (messages, code)
    elif expected is not _UNDECIDED:
        assert (messages, code) == (expected, None)
    await fz.check_still_serving(caplog)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(payload=payloads, binary=st.booleans())
@example(payload=b"", binary=False)
@example(payload=b"\xc3\x28", binary=True)
async def test_fuzz_raw_websocket(
    echo_fuzz: EchoFuzz, caplog: pytest.LogCaptureFixture, payload: bytes, binary: bool
) -> None:
    fz = echo_fuzz
    async with fz.http.ws_connect(fz.served.ws_url("/websocket")) as ws:
        opcode = aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT
        await ws.send_frame(payload, opcode)
        if not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_str("sentinel")
        messages, code = await _read_until_sentinel(ws, "sentinel", framed=False)
    if len(payload) > MAX:
        assert code == 1009
    elif len(payload) == MAX:
        assert code in (None, 1009)
    elif not binary and not _is_utf8(payload):
        assert code == 1007
    else:
        assert code is None
        assert messages == [payload.decode("utf-8", errors="replace")]
    await fz.check_still_serving(caplog)


# --------------------------------------------------------------------------- URLs

callbacks = st.one_of(
    st.from_regex(_CALLBACK, fullmatch=True),
    st.text(max_size=40),
    st.sampled_from(
        ["", "a" * 32, "a" * 33, "alert(1)//", "_jp.a1b2c3d", "<script>", "a\x00", "%", "a b"]
    ),
)
_URL_ALPHABET = "ABCxyz019-_.~!$&'()*+,;=:@"
_pct = st.integers(0, 255).map(lambda b: f"%{b:02X}")
segments = st.lists(
    st.one_of(
        st.text(alphabet=_URL_ALPHABET, min_size=1, max_size=3),
        _pct,
        st.sampled_from(["%2F", "%2f", "%2E", ".", "..", "%25", "%", "%ZZ", "%C3%A9", "%00", "é"]),
    ),
    max_size=6,
).map("".join)


@FUZZ
@given(route=st.sampled_from(["jsonp", "htmlfile"]), callback=callbacks, raw=st.booleans())
@example(route="jsonp", callback="", raw=False)
@example(route="htmlfile", callback="%E2%80%A8", raw=True)
async def test_fuzz_callbacks(
    echo_fuzz: EchoFuzz, caplog: pytest.LogCaptureFixture, route: str, callback: str, raw: bool
) -> None:
    fz = echo_fuzz
    base = fz.served.url(f"/000/{new_id()}/{route}")
    if raw:  # the query string as given, odd percent-escapes and all
        kept = (ch if ch in _URL_ALPHABET + "%" else f"%{ord(ch):02X}" for ch in callback)
        url = URL(base + "?c=" + "".join(ch for ch in kept if len(ch) <= 3), encoded=True)
    else:
        url = URL(base).with_query({"c": callback})
    async with fz.http.get(url) as response:
        status = response.status
        if status == 200 and route == "htmlfile":
            text = (await response.content.readexactly(1024)).decode()
            response.close()
        else:
            text = await response.text()
    check_answer(status, text, {200, 400, 500})
    if not raw:
        if not callback:
            assert (status, text) == (500, '"callback" parameter required')
        elif not _CALLBACK.fullmatch(callback):
            assert (status, text) == (500, 'invalid "callback" parameter')
        else:
            assert status == 200
    if status == 200:
        pattern = r'/\*\*/(.*)\("o"\);\r\n' if route == "jsonp" else r"var c = parent\.(.*);"
        match = re.search(pattern, text)
        assert match is not None, text
        assert _CALLBACK.fullmatch(match.group(1)), match.group(1)
        if not raw:
            assert match.group(1) == callback
    await fz.check_still_serving(caplog)


@FUZZ
@given(
    server=segments,
    session=segments,
    route=st.sampled_from(
        [
            "xhr",
            "xhr_send",
            "xhr_streaming",
            "eventsource",
            "jsonp?c=cb",
            "htmlfile?c=cb",
            "websocket",
            "jsonp_send",
            "bogus",
        ]
    ),
    method=st.sampled_from(["GET", "POST", "OPTIONS", "PUT"]),
)
@example(server="000", session="a%2Fb", route="xhr", method="POST")
@example(server="%2E%2E", session="%2E", route="xhr", method="POST")
@example(server="000", session="%00", route="xhr_streaming", method="POST")
async def test_fuzz_session_urls(
    echo_fuzz: EchoFuzz,
    caplog: pytest.LogCaptureFixture,
    server: str,
    session: str,
    route: str,
    method: str,
) -> None:
    fz = echo_fuzz
    url = URL(f"{fz.served.base_url}/{server}/{session}/{route}", encoded=True)
    data = b'["hello"]' if method == "POST" else None
    try:
        async with asyncio.timeout(1.5), fz.http.request(method, url, data=data) as r:
            status = r.status
            if status == 200 and route.startswith(("xhr_streaming", "eventsource", "htmlfile")):
                text = (await r.content.read(64)).decode(errors="replace")
                r.close()
            else:
                text = await r.text(errors="replace")
    except TimeoutError:
        # A second poll of a session that the fuzzer named twice waits for a message (up to
        # heartbeat_delay): legitimate for the polling receivers, and for them only.
        assert (route, method) in (("xhr", "POST"), ("jsonp?c=cb", "GET")), (route, method)
    else:
        check_answer(status, text, {200, 204, 400, 404, 405})
    await fz.check_still_serving(caplog)


# --------------------------------------------------------------------------- the cursor app

coordinates = st.one_of(
    st.floats(0, 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    json_values,
)
no_surrogates = st.characters(exclude_categories=("Cs",))
# Lone surrogates included: `dumps` escapes them ("\ud800"), which is JSON syntax whose
# string UTF-8 cannot encode; the app must refuse it, not store it as a name.
names = st.one_of(st.text(max_size=40), st.characters(categories=("Cs",)), json_values)
v2_moves = st.fixed_dictionaries(
    {
        "type": st.just("move") | st.text(no_surrogates, max_size=6),
        "x": coordinates,
        "y": coordinates,
    },
    optional={"name": names},
)
tutorial_moves = st.fixed_dictionaries(
    {"x": coordinates, "y": coordinates},
    optional={"extra": json_values, "type": json_values, "sender": json_values},
)
deep_extras = st.integers(1, 1000).map(lambda d: '{"x":1,"y":2,"e":' + "[" * d + "]" * d + "}")
app_texts = st.one_of(
    v2_moves.map(dumps),
    tutorial_moves.map(dumps),
    st.dictionaries(st.text(no_surrogates, max_size=10), json_values, max_size=6).map(dumps),
    st.text(no_surrogates, max_size=80),
    st.integers(-(10**400), 10**400).map(lambda v: f'{{"type":"move","x":{v},"y":0.5}}'),
    st.sampled_from(['{"type":"move","x":1e400,"y":0}', '{"x":1e999,"y":1}', "x" * 5000]),
    deep_nesting,
    deep_extras,
).filter(lambda text: not re.search("[\ud800-\udfff]", text))


@dataclass
class AppFuzz:
    served: Served
    observer: SockJSClient
    control: SockJSClient
    control_id: str
    v2: SockJSClient
    v2_id: str
    tutorial: SockJSClient
    poller: SockJSClient
    examples: int = 0


@pytest.fixture
async def app_fuzz(cursor_server, connect: Connect) -> AppFuzz:
    served = await cursor_server(Settings(disconnect_delay=0.5, heartbeat_delay=5, tick_ms=30))
    # A tutorial member first: its flavour is then encoded first on every flush.
    tutorial = await connect("websocket", served.base_url, "room=fuzz")
    observer = await connect("websocket", served.base_url, "v=2&room=fuzz&name=observer")
    control = await connect("websocket", served.base_url, "v=2&room=fuzz&name=control")
    v2 = await connect("websocket", served.base_url, "v=2&room=fuzz&name=fuzzer")
    poller = await connect("xhr-polling", served.base_url, "v=2&room=fuzz&name=poller")
    ids = {}
    for name, client in (("control", control), ("v2", v2)):
        welcome = await client.recv_json_until(lambda m: m.get("type") == "welcome")
        ids[name] = welcome["id"]
    return AppFuzz(served, observer, control, ids["control"], v2, ids["v2"], tutorial, poller)


raw_app_bytes = st.one_of(st.binary(max_size=60), app_texts.map(to_bytes))


@FUZZ
@given(text=app_texts, raw=raw_app_bytes)
@example(text='{"x":1,"y":2,"e":' + "[" * 300 + "]" * 300 + "}", raw=b"\xff")
@example(text='{"type":"move","x":0.5,"y":0.5,"name":"\\u0000"}', raw=b'\\ud800"')
@example(text='{"type":"move","x":0.5,"y":0.5,"name":"\\ud800"}', raw=b"[]")
@example(text='{"x":1,"y":2,"e":{"\\udc00":["\\ud800"]}}', raw=b"\\udfff")
async def test_fuzz_cursor_messages(
    app_fuzz: AppFuzz, caplog: pytest.LogCaptureFixture, text: str, raw: bytes
) -> None:
    fz = app_fuzz
    fz.examples += 1
    mark = fz.examples / 10_000  # a distinct valid coordinate per example
    await fz.tutorial.send(text)
    await fz.v2.send(text)
    # Raw bytes inside a SockJS frame, invalid UTF-8 included, over xhr_send.
    body = b'["' + raw + b'"]'
    async with fz.poller.http.post(
        fz.poller.session_url + "/xhr_send", data=body, headers={"Content-Type": "text/plain"}
    ) as response:
        check_answer(response.status, await response.text(), {204, 500})
    await fz.v2.send({"type": "move", "x": 0.5, "y": mark})
    await fz.control.send({"type": "move", "x": 0.25, "y": mark})

    def own_mark(message: Any) -> bool:
        return (
            message.get("type") == "move"
            and message.get("sender") == fz.v2_id
            and (message.get("y") == mark)
        )

    await fz.v2.recv_json_until(own_mark, TIMEOUT)
    for message in fz.v2.skipped:  # what the fuzzer was told in between
        assert message.get("type") in ("move", "join", "leave", "error"), message
        if message["type"] == "error":
            assert message["error"] in APP_ERRORS, message
    await fz.observer.recv_json_until(
        lambda m: m.get("type") == "move" and m.get("sender") == fz.control_id and m["y"] == mark,
        TIMEOUT,
    )
    for client in (fz.tutorial, fz.v2, fz.poller, fz.observer, fz.control):
        assert not client.ended, (client, client.closed_with, client.error)
        client.pending()  # drop the room's traffic nobody reads
    check_logs(caplog)


@pytest.fixture
async def query_server(cursor_server) -> Served:
    return await cursor_server(Settings(disconnect_delay=0.5, heartbeat_delay=5))


@FUZZ
@given(
    room=st.one_of(st.text(max_size=70), st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)),
    name=st.text(max_size=50),
    v=st.sampled_from(["2", "1", "", "02", "\uff12"]),
)
@example(room="", name="\x00", v="2")
@example(room="a" * 65, name="", v="2")
async def test_fuzz_cursor_query(
    query_server: Served,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    room: str,
    name: str,
    v: str,
) -> None:
    served = query_server
    query = URL("/").with_query({"room": room, "name": name, "v": v}).raw_query_string
    url = served.ws_url(f"/000/{new_id()}/websocket")
    async with http.ws_connect(f"{url}?{query}") as ws:
        assert (await ws.receive(TIMEOUT)).data == "o"
        if v != "2" and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", room or "lobby"):
            pass  # a tutorial client is told nothing until someone moves
        else:
            first = await ws.receive(TIMEOUT)
            assert first.type is aiohttp.WSMsgType.TEXT, first
            if first.data.startswith("c"):
                assert first.data == 'c[4001,"Invalid room"]'
                assert room and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", room)
            else:
                welcome = json.loads(json.loads(first.data[1:])[0])
                assert welcome["type"] == "welcome"
                assert welcome["room"] == (room or "lobby")
    check_logs(caplog)


async def test_deep_tutorial_extras_cannot_black_out_a_room(
    cursor_server, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the fuzzer: extras nested deeper than orjson can encode (255 levels, well
    within the 4 KiB message limit and orjson's 1024-level parser) pass validation, then
    make `CursorCodec.encode` raise inside `Hub.flush`, a timer callback: that tick's batch
    is lost for every member of the room (and later rooms of the same flush)."""
    served = await cursor_server(Settings(disconnect_delay=0.5, heartbeat_delay=5, tick_ms=30))
    attacker = await connect("websocket", served.base_url, "room=dark")
    observer = await connect("websocket", served.base_url, "v=2&room=dark")
    control = await connect("websocket", served.base_url, "v=2&room=dark")
    control_id = (await control.recv_json_until(lambda m: m.get("type") == "welcome"))["id"]
    deep = '{"x":1,"y":2,"e":' + "[" * 300 + "]" * 300 + "}"
    missed = []
    for k in range(5):
        await attacker.send(deep)
        await control.send({"type": "move", "x": 0.5, "y": k / 100})
        try:
            await observer.recv_json_until(
                lambda m, k=k: (
                    m.get("type") == "move" and m.get("sender") == control_id and m["y"] == k / 100
                ),
                0.5,
            )
        except TimeoutError:
            missed.append(k)
        await asyncio.sleep(0.03)
    assert not missed, f"the observer never got control moves {missed}"
    assert not attacker.ended
    check_logs(caplog)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # An integer literal past a double's range: the standard-library fallback parser
        # reads it as an exact int, and math.isfinite() raises OverflowError on it.
        ('{"type":"move","x":1' + "0" * 400 + ',"y":0.5}', "bad coordinates"),
        ('{"type":"move","x":0.5,"y":-' + "9" * 320 + "}", "bad coordinates"),
        # Nesting past orjson's 1024 levels: the fallback parser raises RecursionError,
        # which is not a ValueError.
        ("[" * 1100 + "]" * 1100, "not JSON"),
        ('{"type":"move","x":0.5,"y":0.5,"n":' + "[" * 1100 + "]" * 1100 + "}", "not JSON"),
        # Python 3.12+ bounds the standard parser by the C recursion limit (about 10 000
        # levels on 3.13), not sys.getrecursionlimit(): nesting is bounded before it parses,
        # so these are "not JSON" on every version, whichever parser reads them.
        ('{"type":"move","x":1e999,"y":0.5,"n":' + "[" * 1500 + "]" * 1500 + "}", "not JSON"),
        ('{"type":"move","x":0.5,"y":0.5,"n":' + "[" * 40 + "]" * 40 + "}", "not JSON"),
    ],
    ids=["huge-int-x", "huge-int-y", "deep-array", "deep-field", "deep-fallback", "past-depth"],
)
async def test_parser_edge_cases_are_refused_not_crashed(
    cursor_server, connect: Connect, caplog: pytest.LogCaptureFixture, text: str, error: str
) -> None:
    """Found by the fuzzer: `messages._object` falls back to `json.loads` when orjson refuses
    a message (so that 1e999 is "bad coordinates"); for these inputs that fallback either
    returns an int too large for `math.isfinite` or raises RecursionError, and the handler
    crashes (an ERROR with a traceback per message) instead of answering with an error."""
    served = await cursor_server(Settings(disconnect_delay=0.5, heartbeat_delay=5))
    client = await connect("websocket", served.base_url, "v=2&room=edge")
    await client.recv_json_until(lambda m: m.get("type") == "welcome")
    await client.send(text)
    refusal = await client.recv_json_until(lambda m: m.get("type") == "error", 2.0)
    assert refusal == {"type": "error", "error": error}
    tutorial = await connect("websocket", served.base_url, "room=edge")
    await tutorial.send(text)  # refused silently for tutorial clients
    await tutorial.send({"x": 1, "y": 2})
    assert (await tutorial.recv_json_until(lambda m: m.get("x") == 1, TIMEOUT))["y"] == 2
    check_logs(caplog)
