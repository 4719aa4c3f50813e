"""The page from one origin, the SockJS server on another (`?server=`): CORS with credentials.

The page is served by a second instance of the app on another port (another origin); its
SockJS base is the main server. A same-origin page on the main server moves, the
cross-origin page sees it (and the other way round).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .conftest import Apps, Server, assert_only_loopback

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CROSS_ORIGIN_TRANSPORTS = (
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "jsonp-polling",
)

#: Records, for every XMLHttpRequest sent, its URL and whether it carried credentials.
XHR_SPY = """
(() => {
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  window.__xhrs = [];
  XMLHttpRequest.prototype.open = function (method, url) {
    this.__url = String(new URL(url, location.href));
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    window.__xhrs.push({url: this.__url, withCredentials: this.withCredentials});
    return send.apply(this, arguments);
  };
})();
"""


@pytest.mark.parametrize("transport", CROSS_ORIGIN_TRANSPORTS)
async def test_cross_origin_page(
    apps: Apps, room: str, server: Server, page_server: Server, transport: str
) -> None:
    assert server.url != page_server.url
    local = await apps.open(room=room, name="Local", transports="websocket")
    remote = await apps.open(
        room=room,
        name="Remote",
        transports=transport,
        origin=page_server.url,
        server=server.url,
        init_script=XHR_SPY,
    )
    info = await remote.info()
    assert info["sockTransport"] == transport, (info, remote.diagnostics())
    assert info["dataTransport"] == transport, info
    assert await remote.page.evaluate("location.origin") == page_server.url
    sockjs_url = await remote.page.evaluate("cursorshare.url")
    assert sockjs_url.startswith(f"{server.url}/ws?"), sockjs_url

    local_id, remote_id = await local.id(), await remote.id()
    for fx, fy in ((0.3, 0.4), (0.75, 0.2)):
        at = await local.point(fx, fy)
        await remote.wait_cursor(local_id, at, name="Local")
    at = await remote.point(0.6, 0.65)
    await local.wait_cursor(remote_id, at, name="Remote")

    # every SockJS request went to the main server; none to the page's own origin
    endpoint = f"{server.url}/ws/"
    sockjs_urls = [u for u in apps.traffic.urls() if "/ws/" in urlsplit(u).path]
    page_port = urlsplit(page_server.url).port
    assert not [u for u in sockjs_urls if urlsplit(u).port == page_port], sockjs_urls

    # the XHRs to the server carried credentials ...
    xhrs = [x for x in await remote.page.evaluate("window.__xhrs") if x["url"].startswith(endpoint)]
    assert xhrs, "no XHR to the SockJS server was seen"
    assert all(x["withCredentials"] for x in xhrs), xhrs
    # ... and the server answered with CORS for exactly this origin, credentials allowed
    answers = [
        r
        for r in remote.responses
        if r.url.startswith(endpoint) and r.request.resource_type in ("xhr", "fetch")
    ]
    assert answers, "no XHR response from the SockJS server was seen"
    for response in answers:
        headers = await response.all_headers()
        assert headers.get("access-control-allow-origin") == page_server.url, (
            response.url,
            headers,
        )
        assert headers.get("access-control-allow-credentials") == "true", (response.url, headers)

    assert not remote.unexpected_errors(), remote.errors
    assert_only_loopback(apps.traffic)
