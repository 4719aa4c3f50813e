"""Quiet, useful logs (issue #10, finding 7).

Expected: a malformed request is one WARNING line without a traceback, rate-limited per
address (`AbuseLog`: at most 5 lines a minute per address, then one summary); tracebacks are
for our own bugs only. aiohttp alone logs a malformed request at ERROR with a traceback
("Error handling request").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from cursorshare.config import Settings
from cursorshare.server import build_app, make_runner

from .conftest import TIMEOUT

#: 18 bytes: an HTTP/1.1 request without the Host header HTTP/1.1 requires.
MALFORMED = b"GET / HTTP/1.1\r\n\r\n"


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug of ours")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The cursor app, plus a route with a bug, served the way `cursorshare serve` does."""
    app = build_app(Settings())
    app.router.add_get("/boom", boom)
    runner = make_runner(app, Settings())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await asyncio.wait_for(runner.cleanup(), 10.0)


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def warnings_and_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_malformed_request_is_one_warning_line_without_traceback(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(MALFORMED) == 18
    with caplog.at_level(logging.DEBUG):
        answer = await exchange(port, MALFORMED)
    assert answer.startswith(b"HTTP/1.0 400 ")
    records = warnings_and_worse(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("127.0.0.1: bad HTTP request (400)")
    assert all(r.exc_info is None and r.exc_text is None for r in caplog.records)


async def test_a_thousand_malformed_requests_from_one_address_log_a_bounded_number_of_lines(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(1000):
            await exchange(port, MALFORMED)
    records = warnings_and_worse(caplog)
    assert 1 <= len(records) <= 5
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records)


async def test_our_own_bugs_still_get_a_traceback(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        answer = await exchange(port, b"GET /boom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


@pytest.fixture
def served_command() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`python -m cursorshare serve` on a free port; its log lines come on stdout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = int(sock.getsockname()[1])
    env = dict(os.environ, CURSORSHARE_PORT=str(free), CURSORSHARE_LOG_LEVEL="info")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cursorshare", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "serving http://" in proc.stdout.readline()
        yield free, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.returncode is None:
            proc.kill()
            proc.wait()


def test_the_command_logs_a_malformed_request_as_one_line(
    served_command: tuple[int, subprocess.Popen[str]],
) -> None:
    free, proc = served_command
    with socket.create_connection(("127.0.0.1", free), timeout=TIMEOUT) as sock:
        sock.sendall(MALFORMED)
        assert sock.recv(100).startswith(b"HTTP/1.0 400 ")
    proc.terminate()
    output, _ = proc.communicate(timeout=20)
    lines = output.splitlines()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    problems = [line for line in lines if " WARNING " in line or " ERROR " in line]
    assert len(problems) == 1, output
    assert "127.0.0.1: bad HTTP request (400)" in problems[0]
