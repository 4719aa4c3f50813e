"""The server that outside SockJS test suites run against.

    python -m cursorshare.sockjs.conformance --host 127.0.0.1 --port 8081

It serves what the official `sockjs-protocol.py` 0.3.3 expects (`/echo` with
response_limit=4096, `/close`, `/disabled_websocket_echo`, `/cookie_needed_echo`) and what
sockjs-client's own test server (its tests/support) serves besides: `/ticker`, `/amplify`,
`/broadcast`, the plain `/simple.txt`, `/streaming.txt`, `/slow-script.js` and `/config.js`.
Its browser suite also loads pages from the same server: ``--static DIR`` serves a directory
(sockjs-client's tests/html) at the root. Its karma setup reaches the server through a proxy
that strips a path, so the iframe page's script must be named as the browser sees it:
``--sockjs-url URL`` sets it for every endpoint, as that test server's own ``sockjs_url`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler as RequestHandler

from .endpoint import add_endpoint
from .messages import MsgType, SockjsMessage
from .session import Session

#: How often `/ticker` sends "tick!", as in sockjs-client's test server.
TICK_SECONDS = 1.0
#: What sockjs-client's test server delays: the end of /streaming.txt, all of /slow-script.js.
STREAMING_TAIL_DELAY = 0.25
SLOW_SCRIPT_DELAY = 0.5


async def echo(msg: SockjsMessage, session: Session) -> None:
    if msg.type is MsgType.MESSAGE:
        session.send(str(msg.data))


async def close_at_once(msg: SockjsMessage, session: Session) -> None:
    if msg.type is MsgType.OPEN:
        session.close(3000, "Go away!")


async def amplify(msg: SockjsMessage, session: Session) -> None:
    """Answer a message "n" with 2**n x's (n outside 1..18 counts as 1)."""
    if msg.type is MsgType.MESSAGE:
        try:
            n = int(float(str(msg.data)))
        except ValueError:
            n = 1
        n = n if 0 < n < 19 else 1
        session.send("x" * 2**n)


class Ticker:
    """Sends "tick!" to every session once a second until it closes."""

    def __init__(self) -> None:
        self._timers: dict[Session, asyncio.TimerHandle] = {}

    async def __call__(self, msg: SockjsMessage, session: Session) -> None:
        if msg.type is MsgType.OPEN:
            self._schedule(session)
        elif msg.type in (MsgType.CLOSE, MsgType.CLOSED):
            timer = self._timers.pop(session, None)
            if timer is not None:
                timer.cancel()

    def _schedule(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        self._timers[session] = loop.call_later(TICK_SECONDS, self._tick, session)

    def _tick(self, session: Session) -> None:
        session.send("tick!")
        self._schedule(session)


class Broadcast:
    """Every message goes to every open session of the endpoint, the sender included."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()

    async def __call__(self, msg: SockjsMessage, session: Session) -> None:
        if msg.type is MsgType.OPEN:
            self._sessions.add(session)
        elif msg.type in (MsgType.CLOSE, MsgType.CLOSED):
            self._sessions.discard(session)
        elif msg.type is MsgType.MESSAGE:
            for member in list(self._sessions):
                member.send(str(msg.data))


# -- the plain files sockjs-client's sender and receiver tests fetch ----------------------------

_TEXT = "text/plain"


async def simple_txt(request: web.Request) -> web.Response:
    return web.Response(
        text="a" * 2048 + "\nb\n", content_type=_TEXT, headers={"Access-Control-Allow-Origin": "*"}
    )


async def streaming_txt(request: web.Request) -> web.StreamResponse:
    """A body in two parts, the second one later: the client must see the first at once."""
    response = web.StreamResponse(
        headers={hdrs.CONTENT_TYPE: _TEXT, "Access-Control-Allow-Origin": "*"}
    )
    await response.prepare(request)
    await response.write(("a" * 2048 + "\n").encode())
    await asyncio.sleep(STREAMING_TAIL_DELAY)
    await response.write(b"b\n")
    await response.write_eof()
    return response


async def slow_script(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_SCRIPT_DELAY)
    return web.Response(text="var a = 1;\n", content_type="application/javascript")


def config_js(port: int) -> RequestHandler:
    """`clientOptions` for the browser suite: this server's URL, as the page's host saw it."""

    async def handler(request: web.Request) -> web.Response:
        url = f"http://{request.host}"
        referer = request.headers.get(hdrs.REFERER)
        if referer:
            parts = urlsplit(referer)
            url = f"{parts.scheme}://{parts.hostname}:{port}"
        options = {"url": url, "sockjs_opts": {"info": {"cookie_needed": False}}}
        return web.Response(
            text=f"var clientOptions = {json.dumps(options)};",
            content_type="application/javascript",
        )

    return handler


@web.middleware
async def empty_not_found(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    """A URL nothing serves gets a bare 404, as from sockjs-client's test server (its sender
    tests require that no body arrives for a wrong URL)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404)


def build_app(
    *, port: int = 8081, static: Path | None = None, sockjs_url: str | None = None
) -> web.Application:
    app = web.Application(middlewares=[empty_not_found])
    # Without a sockjs_url (None) every endpoint's iframe page loads the client this library
    # ships.
    add_endpoint(app, echo, prefix="/echo", name="echo", response_limit=4096, sockjs_url=sockjs_url)
    add_endpoint(
        app,
        echo,
        prefix="/disabled_websocket_echo",
        name="wsoff",
        disabled_transports=("websocket",),
        sockjs_url=sockjs_url,
    )
    add_endpoint(
        app,
        echo,
        prefix="/cookie_needed_echo",
        name="cookie",
        cookie_needed=True,
        sockjs_url=sockjs_url,
    )
    add_endpoint(app, close_at_once, prefix="/close", name="close", sockjs_url=sockjs_url)
    add_endpoint(app, Ticker(), prefix="/ticker", name="ticker", sockjs_url=sockjs_url)
    add_endpoint(app, amplify, prefix="/amplify", name="amplify", sockjs_url=sockjs_url)
    add_endpoint(app, Broadcast(), prefix="/broadcast", name="broadcast", sockjs_url=sockjs_url)
    app.router.add_get("/simple.txt", simple_txt)
    app.router.add_get("/streaming.txt", streaming_txt)
    app.router.add_get("/slow-script.js", slow_script)
    app.router.add_get("/config.js", config_js(port))
    if static is not None:
        app.router.add_static("/", static)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cursorshare.sockjs.conformance",
        description="Serve the endpoints the SockJS protocol and client test suites expect.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--static", type=Path, help="directory served at / (sockjs-client's tests/html)"
    )
    parser.add_argument(
        "--sockjs-url",
        help="the sockjs-client script every iframe page loads, as the browser must request it "
        "(default: the client this library ships, under each prefix)",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    app = build_app(port=args.port, static=args.static, sockjs_url=args.sockjs_url)
    web.run_app(
        app, host=args.host, port=args.port, handler_cancellation=True, print=_announce(args)
    )


def _announce(args: argparse.Namespace) -> Callable[..., None]:
    """What run_app prints once it listens: one line a driving script can wait for."""

    def announce(*_: object) -> None:
        print(f"sockjs conformance server on http://{args.host}:{args.port}", flush=True)

    return announce


if __name__ == "__main__":
    main()
