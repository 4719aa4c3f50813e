"""Session URLs `/<server>/<session>/<transport>` (spec: SessionURLs)."""

from __future__ import annotations

import random

import pytest


def _rand() -> str:
    return str(random.randint(0, 10**9))


@pytest.mark.parametrize(
    "session_part",
    ["/a/a{r}", "/_/_{r}", "/1/{r}", "/abcdefgh_i-j%20/abcdefg_i-j%20{r}"],
)
async def test_any_server_and_session_value_is_accepted(fetch, session_part):
    r = await fetch("POST", "/echo" + session_part.format(r=_rand()) + "/xhr")
    assert r.status == 200
    assert r.body == b"o\n"


@pytest.mark.parametrize("suffix", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_empty_or_dotted_segments_are_404(fetch, suffix, method):
    r = await fetch(method, "/echo" + suffix + "/xhr")
    assert r.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/echo/a/a./xhr_streaming",
        "/echo/a./a/xhr_send",
        "/echo//a/jsonp?c=x",
        "/echo/a//eventsource",
        "/echo/a/a./htmlfile?c=x",
    ],
)
async def test_dotted_or_empty_segments_are_404_on_other_transports(fetch, path):
    method = "GET" if ("jsonp?" in path or "eventsource" in path or "htmlfile" in path) else "POST"
    r = await fetch(method, path)
    assert r.status == 404


@pytest.mark.parametrize("path", ["/echo/a/xhr", "/echo/a/b/c/xhr", "/echo/a/b/nope"])
async def test_session_paths_with_wrong_number_of_parts_or_unknown_transport_are_404(fetch, path):
    r = await fetch("POST", path)
    assert r.status == 404


async def test_server_id_is_ignored(fetch, sid):
    r = await fetch("POST", f"/echo/000/{sid}/xhr")
    assert r.status == 200
    assert r.body == b"o\n"

    r = await fetch("POST", f"/echo/000/{sid}/xhr_send", body='["a"]')
    assert r.status == 204
    assert r.body == b""

    r = await fetch("POST", f"/echo/999/{sid}/xhr")
    assert r.status == 200
    assert r.body == b'a["a"]\n'
