"""Per-endpoint options of a SockJS endpoint, with the defaults sockjs-node uses.

`EndpointOptions` is the one table of these options and their defaults: `add_endpoint`, the
aiohttp-sockjs compat layer and the server's `Settings` (`cursorshare/config.py`) all read
it. Callers change options with typed keyword overrides (`EndpointOverrides`, checked by
mypy and, for untyped callers, at run time by `EndpointOptions.replace`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

#: Transport names as they appear in session URLs (`/{server}/{session}/{transport}`).
TRANSPORTS = (
    "websocket",
    "xhr",
    "xhr_send",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
    "jsonp",
    "jsonp_send",
)
#: The raw websocket at `{prefix}/websocket`; disabling "websocket" disables it too.
RAW_WEBSOCKET = "websocket-raw"

#: Options that must be greater than zero.
_POSITIVE = (
    "heartbeat_delay",
    "disconnect_delay",
    "websocket_close_timeout",
    "response_limit",
    "max_message_size",
    "max_queue_bytes",
    "max_sessions",
    "max_sessions_per_address",
    "max_messages_per_second",
    "max_session_id_length",
)


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """Everything an operator can tune on one endpoint; nothing here is process-wide.

    Constructing one validates it (ValueError for an unknown transport or a bound that is
    not positive).
    """

    #: Seconds between heartbeat frames (`h`) on an idle receiving connection.
    heartbeat_delay: float = 25.0
    #: Seconds a session outlives its last receiving connection before it is closed.
    disconnect_delay: float = 5.0
    #: Bytes a streaming response carries before the server ends it (the client reopens).
    response_limit: int = 128 * 1024
    #: Set a JSESSIONID cookie on session requests, for load balancers that stick on it.
    cookie_needed: bool = False
    #: Transports to refuse, by URL name; "websocket" also disables the raw `/websocket`.
    disabled_transports: frozenset[str] = frozenset()
    #: Origins allowed for CORS answers and websocket upgrades; "*" allows every origin.
    allowed_origins: frozenset[str] = frozenset({"*"})
    #: Largest incoming payload in bytes: a websocket frame, an xhr_send or jsonp_send body.
    max_message_size: int = 64 * 1024
    #: Bytes queued for one session before it is closed as a slow consumer.
    max_queue_bytes: int = 1024 * 1024
    #: Live sessions this endpoint accepts; past it, 503 (HTTP) or close 3010 (websocket).
    max_sessions: int = 20_000
    #: Live sessions per client address (generous: offices share one address behind NAT).
    max_sessions_per_address: int = 500
    #: Sustained messages per second a session may send (twice a 60 Hz cursor); the bucket
    #: holds two seconds of it. Excess messages are dropped and counted.
    max_messages_per_second: float = 120.0
    #: Longest server or session id in a session URL (ids are 1 or more of `A-Z a-z 0-9 _ -`
    #: and space); a longer one is answered 404 like any URL that is not a session URL.
    max_session_id_length: int = 128
    #: Seconds the server waits for a websocket client's close reply after its own close
    #: frame (RFC 6455 §7) before it drops the connection.
    websocket_close_timeout: float = 3.0
    #: Script the iframe page loads. None: the sockjs-client this library ships, served under
    #: the endpoint's prefix (`{prefix}/sockjs-client/{version}/sockjs.min.js`).
    sockjs_url: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.disabled_transports) - {*TRANSPORTS, RAW_WEBSOCKET}
        if unknown:
            raise ValueError(f"unknown transports to disable: {sorted(unknown)}")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def replace(self, **overrides: Unpack[EndpointOverrides]) -> EndpointOptions:
        """A copy with ``overrides`` applied and validated.

        Transport and origin lists may be any iterable of str. An unknown name raises
        TypeError rather than being ignored: untyped callers (aiohttp-sockjs style code
        passing ``**options``) get the check mypy gives typed ones.
        """
        unknown = overrides.keys() - OVERRIDABLE
        if unknown:
            raise TypeError(f"unknown SockJS endpoint options: {sorted(unknown)}")
        changes: dict[str, Any] = dict(overrides)
        if "disabled_transports" in overrides:
            changes["disabled_transports"] = _names(overrides["disabled_transports"])
        if "allowed_origins" in overrides:
            changes["allowed_origins"] = _names(overrides["allowed_origins"])
        return dataclasses.replace(self, **changes)

    @property
    def websocket_enabled(self) -> bool:
        return "websocket" not in self.disabled_transports

    @property
    def raw_websocket_enabled(self) -> bool:
        return self.websocket_enabled and RAW_WEBSOCKET not in self.disabled_transports

    def origin_allowed(self, origin: str | None) -> bool:
        """True when CORS answers and websocket upgrades may name this origin."""
        if "*" in self.allowed_origins or origin is None:
            return True
        return origin in self.allowed_origins


def _names(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):  # one name, not the letters of one
        raise TypeError(f"expected a collection of names, not the string {values!r}")
    return frozenset(values)


class EndpointTuning(TypedDict, total=False):
    """The options aiohttp-sockjs has no argument of its own for (the compat layer takes
    these as keyword arguments); each is the `EndpointOptions` field of the same name."""

    response_limit: int
    allowed_origins: Iterable[str]
    max_message_size: int
    max_queue_bytes: int
    max_sessions: int
    max_sessions_per_address: int
    max_messages_per_second: float
    max_session_id_length: int
    websocket_close_timeout: float


class EndpointOverrides(EndpointTuning, total=False):
    """Keyword overrides of `EndpointOptions`: every field, lists as any iterable of str."""

    heartbeat_delay: float
    disconnect_delay: float
    cookie_needed: bool
    disabled_transports: Iterable[str]
    sockjs_url: str | None


#: Names `replace` accepts: the fields of `EndpointOptions` (a test keeps `EndpointOverrides`'
#: keys equal to them).
OVERRIDABLE = frozenset(field.name for field in dataclasses.fields(EndpointOptions))
