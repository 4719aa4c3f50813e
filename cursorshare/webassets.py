"""The browser app's files (`web/static`): versioned names, gzip, caching.

At startup every file under the web root is read once. Each gets a versioned name with a
content hash (``app.js`` -> ``app.3f9a2c1d0b.js``), and ``index.html`` is served with its
``src``/``href`` references rewritten to those names. So:

- a versioned file never changes: ``Cache-Control: public, max-age=31536000, immutable``;
- the page itself (and a file asked for by its plain name, such as the SockJS iframe page's
  ``/vendor/sockjs.min.js``) is ``no-cache``: revalidated each time, answered 304 by its ETag;
- text files are gzipped once at startup (level 9) and sent gzipped to clients that accept it.

Files edited on disk take effect when the server restarts (the names would change anyway).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aiohttp import hdrs, web

#: Cache-Control of a file under its versioned name: its content never changes.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Cache-Control of the page and of files under their plain names: always revalidated.
REVALIDATE = "no-cache"
#: Hex digits of the content hash in a versioned name.
HASH_LENGTH = 10
#: Files smaller than this are not worth a gzip header.
MIN_GZIP_BYTES = 256

_COMPRESSIBLE = re.compile(r"^(text/|application/(javascript|json|xml)|image/svg\+xml)")
_REFERENCE = re.compile(r'\b(src|href)="([^"?#:]+)"')
_TYPES = {".js": "text/javascript", ".map": "application/json", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    """One file, ready to send."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str
    cache_control: str


def versioned_name(path: str, digest: str) -> str:
    """``vendor/sockjs.min.js`` -> ``vendor/sockjs.min.<digest>.js`` (hash before the suffix)."""
    pure = PurePosixPath(path)
    if not pure.suffix:
        return f"{path}.{digest}"
    return str(pure.with_name(f"{pure.stem}.{digest}{pure.suffix}"))


def _content_type(path: str) -> str:
    suffix = PurePosixPath(path).suffix
    kind = _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
        kind += "; charset=utf-8"
    return kind


def _asset(path: str, body: bytes, cache_control: str) -> Asset:
    content_type = _content_type(path)
    gzipped = None
    if _COMPRESSIBLE.match(content_type) and len(body) >= MIN_GZIP_BYTES:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    etag = '"' + hashlib.sha256(body).hexdigest()[: HASH_LENGTH * 2] + '"'
    return Asset(body, gzipped, content_type, etag, cache_control)


def _accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get(hdrs.ACCEPT_ENCODING, "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=").strip()
            try:
                return not quality or float(quality) > 0
            except ValueError:
                return False
    return False


class WebAssets:
    """Every file of ``root``, under its plain and its versioned name; the rewritten page."""

    def __init__(self, root: Path, *, index: str = "index.html") -> None:
        self.root = root
        self.files: dict[str, Asset] = {}
        #: plain name -> versioned name, for every file but the page.
        self.versions: dict[str, str] = {}
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")) or rel == index:
                continue
            body = file.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
            self.versions[rel] = versioned_name(rel, digest)
            self.files[rel] = _asset(rel, body, REVALIDATE)
            self.files[self.versions[rel]] = _asset(rel, body, IMMUTABLE)
        page = self.render_page((root / index).read_text(encoding="utf-8"))
        self.page = _asset(index, page.encode(), REVALIDATE)
        self.files[index] = self.page

    def render_page(self, html: str) -> str:
        """``html`` with every ``src``/``href`` naming one of our files pointed at its version."""

        def versioned(match: re.Match[str]) -> str:
            attribute, target = match.groups()
            return f'{attribute}="{self.versions.get(target, target)}"'

        return _REFERENCE.sub(versioned, html)

    def response(self, request: web.Request, asset: Asset) -> web.Response:
        headers = {
            hdrs.CACHE_CONTROL: asset.cache_control,
            hdrs.ETAG: asset.etag,
            hdrs.VARY: hdrs.ACCEPT_ENCODING,
        }
        if asset.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
            return web.Response(status=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(request):
            body = asset.gzipped
            headers[hdrs.CONTENT_ENCODING] = "gzip"
        headers[hdrs.CONTENT_TYPE] = asset.content_type
        return web.Response(body=body, headers=headers)

    async def serve_page(self, request: web.Request) -> web.Response:
        return self.response(request, self.page)

    async def serve_file(self, request: web.Request) -> web.Response:
        asset = self.files.get(request.match_info["path"])
        if asset is None:
            raise web.HTTPNotFound()
        return self.response(request, asset)


def add_web_assets(app: web.Application, root: Path) -> WebAssets:
    """Serve ``root`` at ``/`` (the page at ``/``); register this after every other route."""
    assets = WebAssets(root)
    app.router.add_get("/", assets.serve_page)
    app.router.add_get("/{path:.+}", assets.serve_file)
    return assets
