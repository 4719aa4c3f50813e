"""The iframe page's default script: the sockjs-client the library ships, served under the
endpoint's prefix, versioned and cacheable (sockjs-protocol's IframePage wants `sockjs_url`
to be a valid, cacheable URL; sockjs-client's iframe transports need the same version as the
page, 1.6.1 as pinned in web/package.json)."""

from __future__ import annotations

import re

from aiohttp import web

from cursorshare.sockjs import MsgType, Session, SockjsMessage, add_endpoint

PINNED = "1.6.1"
SCRIPT = f"/close/sockjs-client/{PINNED}/sockjs.min.js"
SCRIPT_SRC = re.compile(r'<script src="([^"]*)"></script>')


async def test_default_iframe_script_is_the_shipped_client_under_the_prefix(fetch):
    page = await fetch("GET", "/close/iframe.html")
    assert page.status == 200
    (src,) = SCRIPT_SRC.findall(page.text)
    assert src == SCRIPT

    script = await fetch("GET", src)
    assert script.status == 200
    assert script.content_type() == "application/javascript;charset=UTF-8"
    assert script.body.startswith(f"/* sockjs-client v{PINNED} ".encode())
    assert b"bootstrap_iframe" in script.body
    cache = script.headers["Cache-Control"]
    assert "public" in cache and re.search(r"max-age=[1-9][0-9]{6}", cache)
    assert script.headers.get("Expires")


async def test_shipped_client_answers_conditional_requests_with_304(fetch):
    first = await fetch("GET", SCRIPT)
    etag = first.headers["ETag"]
    again = await fetch("GET", SCRIPT, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""


async def test_the_source_map_the_script_names_is_served_beside_it(fetch):
    script = await fetch("GET", SCRIPT)
    (map_name,) = re.findall(rb"sourceMappingURL=(\S+)", script.body)
    source_map = await fetch("GET", SCRIPT.rsplit("/", 1)[0] + "/" + map_name.decode())
    assert source_map.status == 200
    assert source_map.body.startswith(b"{")


async def test_sockjs_url_still_overrides_and_then_nothing_is_served(fetch):
    page = await fetch("GET", "/echo/iframe.html")  # /echo has a custom sockjs_url
    (src,) = SCRIPT_SRC.findall(page.text)
    assert src == "/static/vendor/sockjs.min.js"
    assert (await fetch("GET", f"/echo/sockjs-client/{PINNED}/sockjs.min.js")).status == 404


async def test_each_endpoint_serves_the_client_under_its_own_prefix(aiohttp_client):
    async def ignore(msg: SockjsMessage, session: Session) -> None:
        assert msg.type in MsgType

    app = web.Application()
    add_endpoint(app, ignore, prefix="/one")
    add_endpoint(app, ignore, prefix="/deep/two/")
    client = await aiohttp_client(app)
    for prefix in ("/one", "/deep/two"):
        page = await (await client.get(prefix + "/iframe.html")).text()
        (src,) = SCRIPT_SRC.findall(page)
        assert src == f"{prefix}/sockjs-client/{PINNED}/sockjs.min.js"
        assert (await client.get(src)).status == 200


async def test_the_iframe_script_is_found_when_the_endpoint_is_in_a_sub_application(
    aiohttp_client,
):
    """An endpoint mounted in an aiohttp sub-application is reached under the sub-app's prefix,
    which is added to its routes only after add_endpoint made them. The iframe page must name
    the script where it is served then (an absolute path, as sockjs-protocol's IframePage
    requires)."""

    async def ignore(msg: SockjsMessage, session: Session) -> None:
        assert msg.type in MsgType

    inner = web.Application()
    add_endpoint(inner, ignore, prefix="/echo")
    outer = web.Application()
    outer.add_subapp("/mounted", inner)
    client = await aiohttp_client(outer)

    for page_url in ("/mounted/echo/iframe.html", "/mounted/echo/iframe-a1b2c3.html"):
        page = await client.get(page_url)
        assert page.status == 200
        (src,) = SCRIPT_SRC.findall(await page.text())
        assert src == f"/mounted/echo/sockjs-client/{PINNED}/sockjs.min.js"
        script = await client.get(src)
        assert script.status == 200
        assert (await script.read()).startswith(f"/* sockjs-client v{PINNED} ".encode())
