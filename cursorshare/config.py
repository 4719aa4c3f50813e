"""Every knob of the server, in one table: its flag, its environment variable, its default.

The CLI builds its options from `KNOBS`; `docs/configuration.md` and the README list them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .cursors.page import origin_list


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _bool(value: str) -> bool:
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
    heartbeat_delay: float = 25.0
    disconnect_delay: float = 5.0
    response_limit: int = 128 * 1024
    max_message_size: int = 64 * 1024
    max_queue_bytes: int = 1024 * 1024
    max_sessions: int = 20_000
    max_sessions_per_address: int = 500
    max_messages_per_second: float = 120.0
    # HTTP-level bounds (cursorshare/httpguard.py), below the SockJS endpoint.
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    keepalive_timeout: float = 75.0
    max_header_bytes: int = 32 * 1024
    max_header_line: int = 8190
    max_headers: int = 100
    max_connections: int = 30_000
    max_connections_per_address: int = 1_000
    # End of the HTTP-level bounds.
    cookie_needed: bool = False
    allowed_origins: tuple[str, ...] = ("*",)
    allowed_backends: tuple[str, ...] = ()
    disabled_transports: tuple[str, ...] = ()
    access_log: bool = False
    event_loop: str = "uvloop"


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
    # HTTP-level bounds (cursorshare/httpguard.py).
    Knob("header_timeout", float, "seconds to receive a request's head; 408 and closed after"),
    Knob("body_timeout", float, "seconds to receive a request's body once its head is in; 408"),
    Knob("keepalive_timeout", float, "seconds an idle keep-alive connection is kept open"),
    Knob("max_header_bytes", int, "bytes of one request head (request line and headers); 431"),
    Knob("max_header_line", int, "bytes of the request line or one header line; 400"),
    Knob("max_headers", int, "header lines in one request; 400"),
    Knob("max_connections", int, "open connections per process; past it 503 and closed"),
    Knob("max_connections_per_address", int, "open connections per client address; 503"),
    # End of the HTTP-level bounds.
    Knob("cookie_needed", _bool, "set JSESSIONID for load balancers that stick on it"),
    Knob("allowed_origins", _csv, "comma-separated origins allowed for CORS and websocket; *: all"),
    Knob(
        "allowed_backends",
        origin_list,
        "comma-separated origins the web page may be pointed at with ?server=; none: its own",
    ),
    Knob(
        "disabled_transports", _csv, "comma-separated SockJS transports to refuse (e.g. websocket)"
    ),
    Knob("event_loop", str, "uvloop (faster) or asyncio (the standard library loop)"),
    Knob("access_log", _bool, "log one line per HTTP request (never message payloads)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for knob in KNOBS:
        default = getattr(defaults, knob.field)
        shown = ",".join(default) if isinstance(default, tuple) else default
        parser.add_argument(
            knob.flag,
            type=knob.parse,
            default=None,
            help=f"{knob.help} [env {knob.env}, default {shown}]",
        )


def from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for knob in KNOBS:
        value = getattr(args, knob.field, None)
        if value is None and env.get(knob.env) not in (None, ""):
            try:
                value = knob.parse(env[knob.env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise SystemExit(f"{knob.env}: {exc}") from exc
        if value is not None:
            values[knob.field] = value
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})
