"""One typed options path: `EndpointOptions` is the only table of defaults, `add_endpoint` takes
it whole (``options=``) and field by field (keyword overrides), and the server's `Settings`
reach it through `config.endpoint_options`.

What an endpoint answers is asserted over HTTP where the option shows there (the `/info`
answer of sockjs-protocol 0.3.3's `InfoTest`, a refused transport's 404).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from aiohttp import web

from cursorshare import config
from cursorshare.httpguard import HttpBounds
from cursorshare.server import SOCKJS, SOCKJS_URL, build_app
from cursorshare.sockjs import (
    EndpointOptions,
    EndpointOverrides,
    EndpointTuning,
    MsgType,
    Session,
    SockjsMessage,
    add_endpoint,
)
from cursorshare.sockjs import compat as sockjs_compat

FIELDS = {field.name: field for field in dataclasses.fields(EndpointOptions)}


async def ignore(msg: SockjsMessage, session: Session) -> None:
    if msg.type is MsgType.MESSAGE:
        session.send(str(msg.data))


def test_the_typed_overrides_name_every_option() -> None:
    assert set(typing.get_type_hints(EndpointOverrides)) == set(FIELDS)
    assert EndpointOverrides.__required_keys__ == frozenset()
    # The compat layer's extra keywords are the options aiohttp-sockjs has no argument for.
    compat_named = {"heartbeat_delay", "disconnect_delay", "cookie_needed"}
    compat_named |= {"disabled_transports", "sockjs_url"}  # as disable_transports, sockjs_cdn
    assert set(typing.get_type_hints(EndpointTuning)) == set(FIELDS) - compat_named


async def test_options_and_overrides_reach_the_endpoint(aiohttp_client: Any) -> None:
    app = web.Application()
    base = EndpointOptions(cookie_needed=True, max_sessions=7, heartbeat_delay=9.0)
    manager = add_endpoint(
        app,
        ignore,
        prefix="/echo",
        options=base,
        heartbeat_delay=2.0,  # an override wins over `options`
        disabled_transports=["websocket"],  # any iterable of names
    )
    assert manager.options == dataclasses.replace(
        base, heartbeat_delay=2.0, disabled_transports=frozenset({"websocket"})
    )
    client = await aiohttp_client(app)
    info = await (await client.get("/echo/info")).json()
    assert info["cookie_needed"] is True
    assert info["websocket"] is False
    assert (await client.get("/echo/websocket")).status == 404
    assert (await client.post("/echo/000/abc/xhr")).status == 200


def test_without_options_an_endpoint_has_the_defaults() -> None:
    manager = add_endpoint(web.Application(), ignore, prefix="/echo")
    assert manager.options == EndpointOptions()


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"max_queue_byte": 10}, TypeError, "max_queue_byte"),
        ({"disabled_transports": "websocket"}, TypeError, "the string 'websocket'"),
        ({"disabled_transports": ["carrier-pigeon"]}, ValueError, "carrier-pigeon"),
        ({"max_sessions": 0}, ValueError, "max_sessions must be positive"),
        ({"websocket_close_timeout": -1.0}, ValueError, "websocket_close_timeout"),
    ],
)
def test_untyped_callers_get_a_clear_error(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    app = web.Application()
    with pytest.raises(error, match=message):
        add_endpoint(app, ignore, prefix="/echo", **overrides)
    # aiohttp-sockjs spells the transports to refuse `disable_transports`.
    compat = {k.replace("disabled_", "disable_"): v for k, v in overrides.items()}
    with pytest.raises(error, match=message):
        sockjs_compat.add_endpoint(app, ignore, name="c", prefix="/c", **compat)
    assert list(app.router.routes()) == []  # nothing half-mounted


def test_constructing_options_validates_them() -> None:
    with pytest.raises(ValueError, match="heartbeat_delay must be positive"):
        EndpointOptions(heartbeat_delay=0)
    with pytest.raises(ValueError, match="unknown transports"):
        EndpointOptions(disabled_transports=frozenset({"xhr_polling"}))


def test_compat_keywords_reach_the_core_endpoint() -> None:
    app = web.Application()
    sockjs_compat.add_endpoint(
        app,
        ignore,
        name="chat",
        prefix="/chat",
        disable_transports=("eventsource",),
        sockjs_cdn="/sockjs.js",
        cookie_needed=False,
        heartbeat_delay=3,
        max_queue_bytes=2048,
        allowed_origins=("https://a.example",),
    )
    options = sockjs_compat.get_manager("chat", app).core.options
    assert options == EndpointOptions(
        heartbeat_delay=3,
        disabled_transports=frozenset({"eventsource"}),
        sockjs_url="/sockjs.js",
        cookie_needed=False,
        max_queue_bytes=2048,
        allowed_origins=frozenset({"https://a.example"}),
    )


# -- the server's settings -----------------------------------------------------------------------


def _other_value(value: object) -> object:
    """A value of the same kind as ``value`` that differs from it (and is still valid)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 3 + 1
    if isinstance(value, frozenset | tuple):
        return ("xhr_streaming",) if not value or "*" not in value else ("https://a.example",)
    raise AssertionError(f"no other value for {value!r}")


def test_settings_take_their_defaults_from_the_options_and_bounds() -> None:
    settings = config.Settings()
    for name in set(FIELDS) - {"sockjs_url"}:
        default = FIELDS[name].default
        mine = getattr(settings, name)
        assert (frozenset(mine) if isinstance(mine, tuple) else mine) == default, name
    for field in dataclasses.fields(HttpBounds):
        assert getattr(settings, field.name) == field.default, field.name


def test_every_endpoint_setting_reaches_the_endpoint() -> None:
    shared = sorted(set(FIELDS) - {"sockjs_url"})
    changed = {name: _other_value(getattr(config.Settings(), name)) for name in shared}
    options = config.endpoint_options(config.Settings(**changed))
    for name, value in changed.items():
        got = getattr(options, name)
        assert (set(got) if isinstance(got, frozenset) else got) == (
            set(value) if isinstance(value, tuple) else value
        ), name


def test_every_http_setting_reaches_the_bounds() -> None:
    names = [field.name for field in dataclasses.fields(HttpBounds)]
    changed = {name: _other_value(getattr(config.Settings(), name)) for name in names}
    bounds = config.http_bounds(config.Settings(**changed))
    assert dataclasses.asdict(bounds) == changed


def test_the_server_mounts_its_endpoint_with_the_settings() -> None:
    settings = config.Settings(max_queue_bytes=4096, disabled_transports=("jsonp",))
    app = build_app(settings)
    assert app[SOCKJS].options == config.endpoint_options(settings).replace(sockjs_url=SOCKJS_URL)
    assert app[SOCKJS].options.max_queue_bytes == 4096
