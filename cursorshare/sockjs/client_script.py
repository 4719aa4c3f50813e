"""The sockjs-client build this library ships, served for the iframe page by default.

The iframe transports load a page from the endpoint that must run the same sockjs-client as
the parent page. A wheel carries the pinned build (web/package.json) as package data; a source
checkout serves the copy `npm ci` puts in web/static/vendor. It is served under the endpoint's
prefix at a versioned path, so it can be cached for a year.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler as RequestHandler

from .http import cache_for_a_year

SCRIPT_NAME = "sockjs.min.js"
MAP_NAME = SCRIPT_NAME + ".map"
_HERE = Path(__file__).resolve().parent
#: Where the script is looked for: package data of a wheel, then a source checkout's copy.
SEARCH_PATH = (_HERE / "_client", _HERE.parents[1] / "web" / "static" / "vendor")
_BANNER = re.compile(rb"sockjs-client v([0-9A-Za-z.+-]+) ")


@dataclass(frozen=True, slots=True)
class ClientScript:
    """The shipped script, its version, and the files to serve for it."""

    directory: Path
    version: str

    @property
    def script(self) -> Path:
        return self.directory / SCRIPT_NAME

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> web.AbstractResource:
        """Serve the script (and its source map, which it names relatively) under ``prefix``,
        at a path with the version in it so that it can be cached. Returns the script's
        resource: its URL gains the prefix of any sub-application the router is mounted in."""
        base = f"{prefix}/sockjs-client/{self.version}/"
        script = router.add_resource(base + SCRIPT_NAME)
        serve_script = self._file(SCRIPT_NAME, "application/javascript")
        script.add_route(hdrs.METH_GET, serve_script)
        script.add_route(hdrs.METH_HEAD, serve_script)
        if (self.directory / MAP_NAME).is_file():
            router.add_get(base + MAP_NAME, self._file(MAP_NAME, "application/json"))
        return script

    def _file(self, name: str, content_type: str) -> RequestHandler:
        path = self.directory / name

        async def serve(request: web.Request) -> web.StreamResponse:
            # aiohttp answers conditional and range requests (ETag, Last-Modified) itself.
            headers = cache_for_a_year()
            headers[hdrs.CONTENT_TYPE] = f"{content_type}; charset=UTF-8"
            return web.FileResponse(path, headers=headers)

        return serve


@functools.cache
def shipped_client() -> ClientScript | None:
    """The sockjs-client this installation carries, or None when it carries none."""
    for directory in SEARCH_PATH:
        script = directory / SCRIPT_NAME
        if script.is_file():
            head = script.read_bytes()[:200]
            match = _BANNER.search(head)
            if match:
                version = match.group(1).decode()
            else:
                version = hashlib.sha256(script.read_bytes()).hexdigest()[:12]
            return ClientScript(directory, version)
    return None
