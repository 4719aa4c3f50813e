"""Static URLs: the greeting, the iframe page and /info (spec: BaseUrlGreeting, IframePage,
InfoTest, and the /info part of JsessionidCookie)."""

from __future__ import annotations

import json
import re

import pytest

NOT_CACHED = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
CUSTOM_SOCKJS_URL = "/static/vendor/sockjs.min.js"

# The iframe page, exactly, with the sockjs_url left as a placeholder.
IFRAME_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""

IFRAME_RE = re.compile(
    "^" + re.escape(IFRAME_TEMPLATE).replace(re.escape("{sockjs_url}"), '(?P<url>[^"]*)') + "$"
)


def assert_strongly_cacheable(r):
    assert "public" in r.headers["Cache-Control"]
    # max-age must be large: at least 7 digits (one year, 31536000, is best).
    assert re.search(r"max-age=[1-9][0-9]{6}", r.headers["Cache-Control"])
    assert r.headers.get("Expires")


# ----------------------------------------------------------------------------- greeting


@pytest.mark.parametrize("path", ["/echo", "/echo/"])
async def test_greeting_is_served_at_base_url_with_and_without_slash(fetch, path):
    r = await fetch("GET", path)
    assert r.status == 200
    assert r.content_type() == "text/plain;charset=UTF-8"
    assert r.body == b"Welcome to SockJS!\n"
    assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize("suffix", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"])
async def test_other_simple_urls_under_base_url_are_404(fetch, suffix):
    r = await fetch("GET", "/echo" + suffix)
    assert r.status == 404


# ----------------------------------------------------------------------------- iframe


async def verify_iframe(fetch, path, sockjs_url=CUSTOM_SOCKJS_URL):
    r = await fetch("GET", path)
    assert r.status == 200
    assert r.content_type() == "text/html;charset=UTF-8"
    assert_strongly_cacheable(r)
    assert r.headers.get("ETag")
    assert "Last-Modified" not in r.headers
    assert "Set-Cookie" not in r.headers
    match = IFRAME_RE.match(r.text.strip())
    assert match, r.text
    assert match.group("url") == sockjs_url
    return r


async def test_iframe_page_is_served_at_simple_url(fetch):
    await verify_iframe(fetch, "/echo/iframe.html")


@pytest.mark.parametrize(
    "suffix",
    ["/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html", "/iframe-0.1.2abc-dirty.2144.html"],
)
async def test_iframe_page_is_served_at_versioned_urls(fetch, suffix):
    await verify_iframe(fetch, "/echo" + suffix)


@pytest.mark.parametrize(
    "suffix",
    [
        "/iframe-a.html?t=1234",
        "/iframe-0.1.2.html?t=123414",
        "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
    ],
)
async def test_iframe_page_is_served_with_a_query_string(fetch, suffix):
    await verify_iframe(fetch, "/echo" + suffix)


@pytest.mark.parametrize(
    "suffix",
    [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/IFRAME",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
    ],
)
async def test_malformed_iframe_urls_are_404(fetch, suffix):
    r = await fetch("GET", "/echo" + suffix)
    assert r.status == 404


async def test_iframe_script_src_is_the_configured_sockjs_url(fetch):
    r = await fetch("GET", "/echo/iframe.html")
    assert f'<script src="{CUSTOM_SOCKJS_URL}"></script>' in r.text
    assert r.text.strip() == IFRAME_TEMPLATE.format(sockjs_url=CUSTOM_SOCKJS_URL)


async def test_iframe_default_sockjs_url_is_a_valid_url(fetch):
    r = await fetch("GET", "/close/iframe.html")
    assert r.status == 200
    match = IFRAME_RE.match(r.text.strip())
    assert match, r.text
    url = match.group("url")
    assert url.startswith("/") or url.startswith("http")


async def test_iframe_etag_is_stable_and_quoted(fetch):
    r1 = await fetch("GET", "/echo/iframe.html")
    r2 = await fetch("GET", "/echo/iframe.html")
    etag = r1.headers.get("ETag")
    assert etag
    assert etag == r2.headers.get("ETag")
    assert re.fullmatch(r'"[^"]+"', etag), etag


async def test_iframe_if_none_match_with_current_etag_gives_304(fetch):
    r1 = await fetch("GET", "/echo/iframe.html")
    r = await fetch("GET", "/echo/iframe.html", headers={"If-None-Match": r1.headers["ETag"]})
    assert r.status == 304
    assert "Content-Type" not in r.headers
    assert r.body == b""


async def test_iframe_if_none_match_with_other_etag_gives_200(fetch):
    r = await fetch("GET", "/echo/iframe.html", headers={"If-None-Match": '"not-the-etag"'})
    assert r.status == 200
    assert r.text.strip() == IFRAME_TEMPLATE.format(sockjs_url=CUSTOM_SOCKJS_URL)


# ----------------------------------------------------------------------------- /info


async def test_info_basic(fetch):
    r = await fetch("GET", "/echo/info", headers={"Origin": "test"})
    assert r.status == 200
    assert r.content_type() == "application/json;charset=UTF-8"
    assert "Set-Cookie" not in r.headers
    assert r.headers["Cache-Control"] == NOT_CACHED
    assert "Expires" not in r.headers
    assert "Last-Modified" not in r.headers
    assert r.headers["Access-Control-Allow-Origin"] == "test"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    data = json.loads(r.body)
    assert data["websocket"] is True
    assert data["cookie_needed"] is False
    assert data["origins"] == ["*:*"]
    assert type(data["entropy"]) is int
    assert 0 <= data["entropy"] <= 2**32 - 1


async def test_info_entropy_differs_between_calls(fetch):
    e1 = json.loads((await fetch("GET", "/echo/info")).body)["entropy"]
    e2 = json.loads((await fetch("GET", "/echo/info")).body)["entropy"]
    assert type(e1) is int and type(e2) is int
    assert e1 != e2


async def test_info_reports_websocket_disabled(fetch):
    r = await fetch("GET", "/disabled_websocket_echo/info")
    assert r.status == 200
    assert json.loads(r.body)["websocket"] is False


async def test_info_reports_cookie_needed_and_sets_no_cookie(fetch):
    r = await fetch("GET", "/cookie_needed_echo/info")
    assert r.status == 200
    assert "Set-Cookie" not in r.headers
    assert json.loads(r.body)["cookie_needed"] is True


async def test_info_never_sets_cookie_even_when_client_sends_jsessionid(fetch):
    for base in ("/cookie_needed_echo", "/echo"):
        r = await fetch("GET", base + "/info", headers={"Cookie": "JSESSIONID=abcdef"})
        assert r.status == 200
        assert "Set-Cookie" not in r.headers
