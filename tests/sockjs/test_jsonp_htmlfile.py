"""JSONP polling and htmlfile streaming (spec: JsonPolling, HtmlFile), plus callback
validation and jsonp_send payload checks."""

from __future__ import annotations

import pytest

NOT_CACHED = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# The htmlfile prelude for callback `callback`, exactly (the server pads it past 1 KiB).
HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""

INVALID_CALLBACKS = ["%20", "*", "abc(", "abc%28"]
CALLBACK_32 = "a" * 32
CALLBACK_33 = "a" * 33


def assert_not_cached(r):
    assert r.headers.get("Cache-Control") == NOT_CACHED
    assert "Expires" not in r.headers
    assert "Last-Modified" not in r.headers


def content_type(r):
    return r.headers.get("Content-Type", "").replace(" ", "")


# ----------------------------------------------------------------------------- JsonPolling


async def test_jsonp_transport(fetch, sid):
    url = f"/echo/000/{sid}"
    r = await fetch("GET", url + "/jsonp?c=%63allback")
    assert r.status == 200
    assert content_type(r) == "application/javascript;charset=UTF-8"
    assert_not_cached(r)
    assert r.body == b'/**/callback("o");\r\n'

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22x%22%5D", headers=FORM)
    # Konqueror does weird things on 204: jsonp_send answers 200 with `ok`.
    assert r.body == b"ok"
    assert r.status == 200
    assert content_type(r) == "text/plain;charset=UTF-8"
    assert_not_cached(r)

    r = await fetch("GET", url + "/jsonp?c=%63allback")
    assert r.status == 200
    assert r.body == b'/**/callback("a[\\"x\\"]");\r\n'


async def test_jsonp_without_callback_is_500(fetch):
    r = await fetch("GET", "/echo/a/a/jsonp")
    assert r.status == 500
    assert '"callback" parameter required' in r.text


@pytest.mark.parametrize("callback", INVALID_CALLBACKS)
async def test_jsonp_invalid_callback_is_500(fetch, callback):
    r = await fetch("GET", "/echo/a/a/jsonp?c=" + callback)
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.text


async def test_jsonp_callback_longer_than_32_characters_is_refused(fetch, sid):
    r = await fetch("GET", f"/echo/000/{sid}/jsonp?c={CALLBACK_33}")
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.text


@pytest.mark.parametrize("callback", [CALLBACK_32, "jQuery_1.2-3", "A.b_C-9"])
async def test_jsonp_callback_of_letters_digits_dash_underscore_dot_is_accepted(
    fetch, new_sid, callback
):
    r = await fetch("GET", f"/echo/000/{new_sid()}/jsonp?c={callback}")
    assert r.status == 200
    assert r.body == f'/**/{callback}("o");\r\n'.encode()


async def test_jsonp_send_broken_json_and_missing_payload_are_500(fetch, sid):
    url = f"/echo/000/{sid}"
    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.body == b'/**/x("o");\r\n'

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22x", headers=FORM)
    assert r.status == 500
    assert "Broken JSON encoding." in r.text

    for data in ["", "d=", "p=p"]:
        r = await fetch("POST", url + "/jsonp_send", body=data, headers=FORM)
        assert r.status == 500, data
        assert "Payload expected." in r.text

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22b%22%5D", headers=FORM)
    assert r.body == b"ok"

    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == b'/**/x("a[\\"b\\"]");\r\n'


@pytest.mark.parametrize(
    ("encoded", "answer"),
    [
        # Not an array: sockjs-node's jsonp_send (lib/transport/jsonp-polling.js) answers
        # "Payload expected.", as the official text does for an empty `d`.
        ("%7B%22a%22%3A1%7D", "Payload expected."),
        ("%22x%22", "Payload expected."),
        ("null", "Payload expected."),
        # An array of non-strings: refused by us only (we deliver strings).
        ("%5B1%2C2%5D", "Broken JSON encoding."),
        ("%5B%5B%22a%22%5D%5D", "Broken JSON encoding."),
    ],
)
async def test_jsonp_send_json_that_is_not_an_array_of_strings_is_refused(
    fetch, sid, encoded, answer
):
    url = f"/echo/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'

    r = await fetch("POST", url + "/jsonp_send", body="d=" + encoded, headers=FORM)
    assert r.status == 500
    assert answer in r.text

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22ok%22%5D", headers=FORM)
    assert r.body == b"ok"
    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.body == b'/**/x("a[\\"ok\\"]");\r\n'


async def test_jsonp_send_to_unknown_session_is_404(fetch, sid):
    r = await fetch("POST", f"/echo/000/{sid}/jsonp_send", body="d=%5B%22x%22%5D", headers=FORM)
    assert r.status == 404


async def test_jsonp_send_accepts_form_and_plain_text_bodies(fetch, sid):
    url = f"/echo/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22abc%22%5D", headers=FORM)
    assert r.body == b"ok"
    r = await fetch(
        "POST", url + "/jsonp_send", body='["%61bc"]', headers={"Content-Type": "text/plain"}
    )
    assert r.body == b"ok"

    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == b'/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n'


async def test_jsonp_app_close_is_served_repeatedly(fetch, sid):
    url = f"/close/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'
    for _ in range(2):
        r = await fetch("GET", url + "/jsonp?c=x")
        assert r.body == b'/**/x("c[3000,\\"Go away!\\"]");\r\n'


async def test_jsonp_send_empty_frame_is_allowed(fetch, sid):
    url = f"/echo/000/{sid}"
    assert (await fetch("GET", url + "/jsonp?c=x")).body == b'/**/x("o");\r\n'

    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%5D", headers=FORM)
    assert r.body == b"ok"
    r = await fetch("POST", url + "/jsonp_send", body="d=%5B%22x%22%5D", headers=FORM)
    assert r.body == b"ok"

    r = await fetch("GET", url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == b'/**/x("a[\\"x\\"]");\r\n'


# ----------------------------------------------------------------------------- HtmlFile


async def test_htmlfile_transport(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("GET", url + "/htmlfile?c=%63allback")
    assert head.status == 200
    assert content_type(head) == "text/html;charset=UTF-8"
    assert_not_cached(head)

    d = await conn.read_chunk()
    assert d.decode().strip() == HTMLFILE_HEAD.format(callback="callback")
    assert len(d) > 1024
    assert await conn.read_chunk() == b'<script>\np("o");\n</script>\r\n'

    r = await fetch("POST", url + "/xhr_send", body='["x"]')
    assert r.body == b""
    assert r.status == 204
    assert await conn.read_chunk() == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'


async def test_htmlfile_without_callback_is_500(fetch):
    r = await fetch("GET", "/echo/a/a/htmlfile")
    assert r.status == 500
    assert '"callback" parameter required' in r.text


@pytest.mark.parametrize("callback", INVALID_CALLBACKS)
async def test_htmlfile_invalid_callback_is_500(fetch, callback):
    r = await fetch("GET", "/echo/a/a/htmlfile?c=" + callback)
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.text


async def test_htmlfile_callback_longer_than_32_characters_is_refused(fetch, sid):
    r = await fetch("GET", f"/echo/000/{sid}/htmlfile?c={CALLBACK_33}")
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.text


@pytest.mark.parametrize("callback", [CALLBACK_32, "jQuery_1.2-3"])
async def test_htmlfile_valid_callback_is_accepted(open_raw, new_sid, callback):
    conn = await open_raw()
    head = await conn.request_head("GET", f"/echo/000/{new_sid()}/htmlfile?c={callback}")
    assert head.status == 200
    d = await conn.read_chunk()
    assert d.decode().strip() == HTMLFILE_HEAD.format(callback=callback)


async def test_htmlfile_closes_after_response_limit(open_raw, fetch, sid):
    url = f"/echo/000/{sid}"
    conn = await open_raw()
    head = await conn.request_head("GET", url + "/htmlfile?c=callback")
    assert head.status == 200
    assert await conn.read_chunk()  # prelude
    assert await conn.read_chunk() == b'<script>\np("o");\n</script>\r\n'

    msg = "x" * 4096
    r = await fetch("POST", url + "/xhr_send", body='["' + msg + '"]')
    assert r.status == 204
    assert (
        await conn.read_chunk() == ('<script>\np("a[\\"' + msg + '\\"]");\n</script>\r\n').encode()
    )

    assert await conn.read_chunk() == b""
