"""What the web page learns from the server that served it: ``GET /config.json``.

The page connects to its own origin. A ``?server=`` link may point it at another backend only
when that backend's origin is in the list the server was configured with
(``--allowed-backends``): otherwise anyone could send users a link to a server they control,
which would receive the users' names and pointers and could show its own text in the page.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from yarl import URL

CONFIG_PATH = "/config.json"


def backend_origins(entries: Iterable[str]) -> tuple[str, ...]:
    """The allowed backends as origins (``https://host[:port]``, default port dropped).

    Raises ValueError for an entry that is not an http(s) origin, so that a typo in the
    configuration stops the server instead of silently allowing nothing.
    """
    origins: list[str] = []
    for entry in entries:
        try:
            url = URL(entry)
        except ValueError as exc:
            raise ValueError(f"allowed backend {entry!r}: {exc}") from exc
        if (
            url.scheme not in ("http", "https")
            or not url.host
            or url.path not in ("", "/")
            or url.user is not None
            or url.query_string
            or url.fragment
        ):
            raise ValueError(f"allowed backend {entry!r} is not an origin like https://host:port")
        origin = str(url.origin())
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def origin_list(value: str) -> tuple[str, ...]:
    """``--allowed-backends``: comma-separated origins, checked when the option is read."""
    return backend_origins(item.strip() for item in value.split(",") if item.strip())


def add_page_config(app: web.Application, allowed_backends: Iterable[str]) -> None:
    """Serve the page's configuration at `CONFIG_PATH`."""
    body = {"allowedBackends": list(backend_origins(allowed_backends))}

    async def page_config(request: web.Request) -> web.Response:
        # Never cached: a changed allow-list applies to the next page load.
        return web.json_response(body, headers={hdrs.CACHE_CONTROL: "no-store"})

    app.router.add_get(CONFIG_PATH, page_config)
