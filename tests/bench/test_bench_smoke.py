"""Smoke test of the load generator against a real cursorshare server, on every transport.

Starts ``python -m cursorshare serve`` on a free port of 127.0.0.1, then runs the load
generator in-process (its async API) with 3 clients at 10 Hz for 2 s. No timing assertions:
only that it connected, moves were delivered, and every field of the report is there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cursorshare.bench import LoadConfig, run_load
from cursorshare.bench.transports import TRANSPORTS

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("bench") / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cursorshare",
                "serve",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}/ws"
            deadline = time.monotonic() + 30.0
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
                try:
                    with urllib.request.urlopen(url + "/info", timeout=1.0) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("server did not answer /ws/info within 30 s")
                time.sleep(0.1)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_load_generator_against_cursorshare(server: tuple[str, int], transport: str) -> None:
    url, pid = server
    result = await run_load(
        LoadConfig(
            url=url,
            transport=transport,
            clients=3,
            rate=10.0,
            duration=2.0,
            warmup=0.5,
            drain=1.0,
            server_pid=pid,
        )
    )
    assert result.connected == 3, result.last_error
    assert result.observers == 3
    assert result.sent > 0
    assert result.expected == result.sent * 3
    assert result.delivered > 0
    assert result.coverage is not None and result.coverage > 0.5, result
    assert result.latency_samples > 0
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms"):
        value = getattr(result, name)
        assert value is not None and value >= 0, name
    report = result.to_dict()
    for key in (
        "sent_per_s",
        "delivered_per_s",
        "expected_per_s",
        "coverage",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "server_cpu_percent",
        "server_rss_mib",
        "gen_cpu_percent",
        "warnings",
        "generator_bound",
    ):
        assert key in report, key
    assert result.server_rss_mib is not None and result.server_rss_mib > 0
    assert result.server_cpu_percent is not None
