"""Serving the browser app (cursorshare/webassets.py): versioned names, gzip, caching.

What HTTP says a cache and a client do with these headers: RFC 9111 (`no-cache` means
revalidate, `immutable` never), RFC 9110 (ETag / If-None-Match -> 304, Accept-Encoding,
Vary). The app under test is the real one (`build_app`) on aiohttp's test server.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cursorshare.config import Settings
from cursorshare.server import build_app, web_root
from cursorshare.webassets import IMMUTABLE, REVALIDATE, WebAssets, versioned_name

#: Bytes over the wire for everything the page loads on a first visit (gzip); the page used
#: to weigh 82.8 KB uncompressed.
PAGE_WEIGHT_BUDGET = 40_000

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(Settings()))) as test_client:
        yield test_client


def referenced(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_versioned_names_put_the_hash_before_the_suffix() -> None:
    assert versioned_name("app.js", "abc") == "app.abc.js"
    assert versioned_name("vendor/sockjs.min.js", "abc") == "vendor/sockjs.min.abc.js"
    assert versioned_name("LICENSE", "abc") == "LICENSE.abc"


async def test_the_page_names_versioned_files_and_is_revalidated(client: Client) -> None:
    answer = await client.get("/")
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == REVALIDATE
    html = await answer.text()
    assets = [u for u in referenced(html) if not u.startswith(("#", "http"))]
    assert {"style.css", "app.js", "vendor/sockjs.min.js"} <= {
        re.sub(r"\.[0-9a-f]{10}(?=\.[a-z]+$)", "", u) for u in assets
    }, assets
    for url in assets:
        assert re.search(r"\.[0-9a-f]{10}\.[a-z]+$", url), url
        got = await client.get("/" + url)
        assert got.status == 200, url
        assert got.headers["Cache-Control"] == IMMUTABLE, url
        plain = await client.get("/" + re.sub(r"\.[0-9a-f]{10}(?=\.[a-z]+$)", "", url))
        assert plain.headers["Cache-Control"] == REVALIDATE
        assert await plain.read() == await got.read()


async def test_text_is_gzipped_only_for_clients_that_accept_it(client: Client) -> None:
    source = (web_root() / "vendor" / "sockjs.min.js").read_bytes()
    zipped = await client.get(
        "/vendor/sockjs.min.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(await zipped.read()) == source
    for refusing in ("identity", "gzip;q=0", ""):
        plain = await client.get(
            "/vendor/sockjs.min.js",
            headers={"Accept-Encoding": refusing},
            auto_decompress=False,
        )
        assert "Content-Encoding" not in plain.headers, refusing
        assert await plain.read() == source


async def test_an_unchanged_file_is_answered_304(client: Client) -> None:
    first = await client.get("/")
    again = await client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


async def test_routes_of_the_app_are_not_shadowed(client: Client) -> None:
    assert (await client.get("/config.json")).headers["Cache-Control"] == "no-store"
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    assert (await client.get("/ws/info")).status == 200
    assert (await client.get("/nope.js")).status == 404
    assert (await client.get("/../pyproject.toml")).status == 404


async def test_the_first_visit_fits_the_page_weight_budget(client: Client) -> None:
    gz = {"Accept-Encoding": "gzip"}
    page = await client.get("/", headers=gz, auto_decompress=False)
    total = len(await page.read())
    html = gzip.decompress(await (await client.get("/", headers=gz, auto_decompress=False)).read())
    urls = [u for u in referenced(html.decode()) if not u.startswith(("#", "http"))]
    sizes = {}
    for url in urls:
        answer = await client.get("/" + url, headers=gz, auto_decompress=False)
        sizes[url] = len(await answer.read())
    total += sum(sizes.values())
    print(f"first visit: {total} bytes in {1 + len(urls)} requests: {sizes}")
    assert total <= PAGE_WEIGHT_BUDGET, sizes


def test_a_page_without_references_renders_as_is(tmp_path: Path) -> None:
    root = tmp_path
    (root / "index.html").write_text('<a href="https://x.example/">x</a><img src="missing.png">')
    assets = WebAssets(root)
    assert assets.page.body == b'<a href="https://x.example/">x</a><img src="missing.png">'
