"""The `cursorshare` command: `serve` (the default) and `bench`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import __version__, config

log = logging.getLogger("cursorshare")

#: Seconds the server waits for streams to end on SIGTERM/SIGINT before closing sockets.
SHUTDOWN_TIMEOUT = 5.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind != "uvloop":
        raise SystemExit(f"unknown event loop {kind!r}: uvloop or asyncio")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        log.warning("uvloop is not installed; using the asyncio event loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(args: argparse.Namespace) -> int:
    settings = config.from_args(args)
    if settings.workers != 1:
        from . import workers

        logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
        return workers.run(settings, serve_settings)
    return serve_settings(settings)


def serve_settings(settings: config.Settings, *, reuse_port: bool = False) -> int:
    """Serve with ``settings`` in this process until SIGINT or SIGTERM."""
    from .listener import url_host
    from .server import SOCKJS, build_app, run

    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    app = build_app(settings)
    # Workers sharing a port (reuse_port) are stopped together by their parent.
    app[SOCKJS].stops_with_peers = reuse_port
    hub = "Redis backplane" if settings.redis_url else "in-memory hub"

    def announce() -> None:
        host = "localhost" if settings.host in ("0.0.0.0", "::", "127.0.0.1") else settings.host
        url = f"http://{url_host(host)}:{settings.port}/"
        print(f"cursorshare {__version__} serving {url} ({hub})", flush=True)

    run(
        app,
        settings,
        loop=_new_loop(settings.event_loop),
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        announce=announce,
        reuse_port=reuse_port,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cursorshare",
        description="SockJS realtime server and multi-user cursor sharing.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="run the server (the default command)")
    config.add_arguments(serve_parser)
    serve_parser.set_defaults(func=serve)
    from .bench.cli import add_parser as add_bench_parser

    add_bench_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
