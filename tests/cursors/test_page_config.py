"""`GET /config.json`: the backends the web page may be pointed at with `?server=`
(issue #10, finding 6). Empty by default: the page then uses its own origin only. The
browser side is tested in tests/browser/test_backend_allowlist.py.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from cursorshare.config import Settings, add_arguments, from_args
from cursorshare.cursors.page import backend_origins
from cursorshare.server import build_app


async def config_of(aiohttp_client: Any, settings: Settings) -> tuple[dict[str, Any], str]:
    client = await aiohttp_client(build_app(settings))
    response = await client.get("/config.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json(), response.headers.get("Cache-Control", "")


async def test_by_default_no_other_backend_is_allowed(aiohttp_client: Any) -> None:
    body, cache = await config_of(aiohttp_client, Settings())
    assert body == {"allowedBackends": []}
    assert cache == "no-store"


async def test_the_configured_backends_are_given_as_origins(aiohttp_client: Any) -> None:
    settings = Settings(allowed_backends=("https://EU.example.com:443/", "http://127.0.0.1:9000"))
    body, _ = await config_of(aiohttp_client, settings)
    assert body == {"allowedBackends": ["https://eu.example.com", "http://127.0.0.1:9000"]}


@pytest.mark.parametrize(
    "entry",
    ["eu.example.com", "ftp://eu.example.com", "https://eu.example.com/ws", "https://u@x.example",
     "https://x.example/?a=1", "https://x.example/#f", "javascript:alert(1)"],
)  # fmt: skip
def test_an_entry_that_is_not_an_origin_stops_the_server(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed backend"):
        backend_origins([entry])
    with pytest.raises(ValueError, match="allowed backend"):
        build_app(Settings(allowed_backends=(entry,)))


def test_the_flag_and_the_environment_variable() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--allowed-backends", "https://a.example, http://b.example:8080"])
    assert from_args(args, {}).allowed_backends == ("https://a.example", "http://b.example:8080")
    env = {"CURSORSHARE_ALLOWED_BACKENDS": "https://c.example"}
    assert from_args(parser.parse_args([]), env).allowed_backends == ("https://c.example",)
    with pytest.raises(SystemExit, match="CURSORSHARE_ALLOWED_BACKENDS"):
        from_args(parser.parse_args([]), {"CURSORSHARE_ALLOWED_BACKENDS": "c.example"})
