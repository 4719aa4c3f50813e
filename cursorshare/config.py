"""Every knob of the server, in one table: its flag, its environment variable, its default.

The defaults of the SockJS endpoint's options are `EndpointOptions`' (cursorshare/sockjs/
options.py) and those of the HTTP-level bounds are `HttpBounds`' (cursorshare/httpguard.py):
`Settings` reads them from there rather than writing them a second time. The CLI builds its
flags from `KNOBS`; `endpoint_options` and `http_bounds` hand the settings on. The README's
"Configuration" table lists every knob (a test keeps it complete).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .cursors.page import origin_list
from .httpguard import HttpBounds
from .sockjs.options import EndpointOptions

_ENDPOINT = EndpointOptions()
_HTTP = HttpBounds()


def parse_csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    redis_url: str | None = None
    node_id: str | None = None
    tick_ms: float = 30.0
    max_tick_ms: float = 100.0
    # The SockJS endpoint at /ws: the fields of `EndpointOptions`, same names and defaults.
    heartbeat_delay: float = _ENDPOINT.heartbeat_delay
    disconnect_delay: float = _ENDPOINT.disconnect_delay
    response_limit: int = _ENDPOINT.response_limit
    max_message_size: int = _ENDPOINT.max_message_size
    max_queue_bytes: int = _ENDPOINT.max_queue_bytes
    max_sessions: int = _ENDPOINT.max_sessions
    max_sessions_per_address: int = _ENDPOINT.max_sessions_per_address
    max_messages_per_second: float = _ENDPOINT.max_messages_per_second
    max_session_id_length: int = _ENDPOINT.max_session_id_length
    websocket_close_timeout: float = _ENDPOINT.websocket_close_timeout
    cookie_needed: bool = _ENDPOINT.cookie_needed
    allowed_origins: tuple[str, ...] = tuple(sorted(_ENDPOINT.allowed_origins))
    disabled_transports: tuple[str, ...] = tuple(sorted(_ENDPOINT.disabled_transports))
    # HTTP-level bounds, below the endpoint: the fields of `HttpBounds`.
    header_timeout: float = _HTTP.header_timeout
    body_timeout: float = _HTTP.body_timeout
    keepalive_timeout: float = _HTTP.keepalive_timeout
    max_header_bytes: int = _HTTP.max_header_bytes
    max_header_line: int = _HTTP.max_header_line
    max_headers: int = _HTTP.max_headers
    max_connections: int = _HTTP.max_connections
    max_connections_per_address: int = _HTTP.max_connections_per_address
    # The web page.
    allowed_backends: tuple[str, ...] = ()
    # The process.
    access_log: bool = False
    event_loop: str = "uvloop"
    # aiohttp's default of 128 overflows when hundreds of clients (re)connect at once, or when a
    # saturated server accepts slowly: the kernel then drops handshakes and the clients wait 1, 3,
    # 7 s to retry. 2048 as gunicorn and uvicorn; the kernel caps it at net.core.somaxconn.
    listen_backlog: int = 2048
    # Processes (cursorshare/workers.py).
    workers: int = 1
    # Presence (issue #13).
    resume_grace: float = 120.0
    max_dropped_per_address: int = 100
    max_dropped: int = 20_000
    max_byes_per_minute: int = 60


def endpoint_options(settings: Settings) -> EndpointOptions:
    """The endpoint options in ``settings``: every `EndpointOptions` field but `sockjs_url`
    (which script the iframe page loads is the application's business, not an operator's)."""
    return EndpointOptions(
        heartbeat_delay=settings.heartbeat_delay,
        disconnect_delay=settings.disconnect_delay,
        response_limit=settings.response_limit,
        cookie_needed=settings.cookie_needed,
        disabled_transports=frozenset(settings.disabled_transports),
        allowed_origins=frozenset(settings.allowed_origins),
        max_message_size=settings.max_message_size,
        max_queue_bytes=settings.max_queue_bytes,
        max_sessions=settings.max_sessions,
        max_sessions_per_address=settings.max_sessions_per_address,
        max_messages_per_second=settings.max_messages_per_second,
        max_session_id_length=settings.max_session_id_length,
        websocket_close_timeout=settings.websocket_close_timeout,
    )


def http_bounds(settings: Settings) -> HttpBounds:
    """The HTTP-level bounds: every `HttpBounds` field from ``settings``."""
    return HttpBounds(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_header_line=settings.max_header_line,
        max_headers=settings.max_headers,
        max_connections=settings.max_connections,
        max_connections_per_address=settings.max_connections_per_address,
    )


@dataclass(frozen=True)
class Knob:
    field: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "CURSORSHARE_" + self.field.upper()

    @property
    def is_switch(self) -> bool:
        """A boolean: `--name` turns it on and `--no-name` off, without a value."""
        return self.parse is parse_bool


KNOBS = (
    Knob("host", str, "address to listen on (0.0.0.0 for every interface)"),
    Knob("port", int, "TCP port to listen on"),
    Knob("log_level", str, "debug, info, warning or error"),
    Knob(
        "redis_url", str, "Redis URL of the backplane (redis://host:6379/0); unset: in-memory hub"
    ),
    Knob("node_id", str, "this node's name on the backplane (default: host-pid)"),
    Knob("tick_ms", float, "hub flush interval in milliseconds"),
    Knob(
        "max_tick_ms",
        float,
        "longest hub flush interval under CPU load, in milliseconds; tick_ms: never adapt",
    ),
    Knob("heartbeat_delay", float, "seconds between SockJS heartbeat frames"),
    Knob("disconnect_delay", float, "seconds a session outlives its last receiving request"),
    Knob("response_limit", int, "bytes per streaming response before the client reopens it"),
    Knob("max_message_size", int, "largest websocket frame or send body, in bytes"),
    Knob("max_queue_bytes", int, "bytes queued for one session before it is closed (3008)"),
    Knob("max_sessions", int, "live sessions per process; past it 503 / close 3010"),
    Knob("max_sessions_per_address", int, "live sessions per client address; past it 503 / 3010"),
    Knob("max_messages_per_second", float, "sustained messages per session; excess dropped, 3009"),
    Knob("max_session_id_length", int, "longest server or session id in a session URL; 404"),
    Knob("websocket_close_timeout", float, "seconds to wait for a websocket client's close reply"),
    Knob("header_timeout", float, "seconds to receive a request's head; 408 and closed after"),
    Knob("body_timeout", float, "seconds to receive a request's body once its head is in; 408"),
    Knob("keepalive_timeout", float, "seconds an idle keep-alive connection is kept open"),
    Knob("listen_backlog", int, "connections the kernel holds for accept (capped by somaxconn)"),
    Knob("max_header_bytes", int, "bytes of one request head (request line and headers); 431"),
    Knob("max_header_line", int, "bytes of the request line or one header line; 400"),
    Knob("max_headers", int, "header lines in one request; 400"),
    Knob("max_connections", int, "open connections per process; past it 503 and closed"),
    Knob("max_connections_per_address", int, "open connections per client address; 503"),
    Knob("cookie_needed", parse_bool, "set JSESSIONID for load balancers that stick on it"),
    Knob(
        "allowed_origins",
        parse_csv,
        "comma-separated origins allowed for CORS and websocket; *: all",
    ),
    Knob(
        "disabled_transports",
        parse_csv,
        "comma-separated SockJS transports to refuse (e.g. websocket)",
    ),
    Knob(
        "allowed_backends",
        origin_list,
        "comma-separated origins the web page may be pointed at with ?server=; none: its own",
    ),
    Knob("event_loop", str, "uvloop (faster) or asyncio (the standard library loop)"),
    Knob("access_log", parse_bool, "log one line per HTTP request (never message payloads)"),
    # Processes (cursorshare/workers.py).
    Knob("workers", int, "server processes sharing the port (SO_REUSEPORT); >1 needs --redis-url"),
    # Presence (issue #13).
    Knob(
        "resume_grace",
        float,
        "seconds a dropped client keeps its identity for a resume (others see it reconnecting)",
    ),
    Knob(
        "max_dropped_per_address",
        int,
        "members kept for a resume per client address; past it the oldest of them leaves",
    ),
    Knob("max_dropped", int, "members kept for a resume per process; past it the oldest leaves"),
    Knob("max_byes_per_minute", int, "POST /presence/bye requests per client address; 429"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per knob; each defaults to None so `from_args` can tell "not given"."""
    defaults = Settings()
    for knob in KNOBS:
        default = getattr(defaults, knob.field)
        shown = ",".join(default) if isinstance(default, tuple) else default
        help_text = f"{knob.help} [env {knob.env}, default {shown}]"
        if knob.is_switch:
            parser.add_argument(
                knob.flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(knob.flag, type=knob.parse, default=None, help=help_text)


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for knob in KNOBS:
        value = getattr(args, knob.field, None)
        raw = env.get(knob.env)
        if value is None and raw not in (None, ""):
            try:
                value = knob.parse(raw)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise SystemExit(f"{knob.env}: {exc}") from exc
        if value is not None:
            values[knob.field] = value
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})
