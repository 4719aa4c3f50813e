"""htmlfile: a never-ending HTML page in a hidden iframe, one `<script>` per frame."""

from __future__ import annotations

from aiohttp import web

from .. import frames
from ..http import CONTENT_HTML
from ..manager import SessionManager
from .base import HttpReceiver, Route
from .callback import callback_or_error

_HEAD = """<!doctype html>
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
  </script>
"""
# Browsers render nothing of a streamed page until they hold about 1 KiB of it.
_MIN_PRELUDE = 1024


class HtmlFile(HttpReceiver):
    name = "htmlfile"
    content_type = CONTENT_HTML
    streaming = True

    def __init__(self, manager: SessionManager, request: web.Request, callback: str) -> None:
        super().__init__(manager, request)
        self._callback = callback

    def prelude(self) -> bytes:
        head = _HEAD.format(callback=self._callback).encode()
        return head + b" " * max(0, _MIN_PRELUDE - len(head)) + b"\r\n\r\n"

    def encode(self, frame: bytes) -> bytes:
        return b"<script>\np(" + frames.json_string(frame) + b");\n</script>\r\n"


async def htmlfile(manager: SessionManager, request: web.Request) -> web.StreamResponse:
    callback = callback_or_error(request)
    if isinstance(callback, web.Response):
        return callback
    return await HtmlFile(manager, request, callback).serve()


ROUTES = (Route("htmlfile", "GET", htmlfile),)
