"""Servers for the load-client tests: cursorshare, and the sockjs-node comparison server.

Each runs as a subprocess on a free port of 127.0.0.1 for the whole module and is stopped
afterwards; a fixture returns once the server answers ``GET /ws/info`` (the wait is for that
event, with a generous upper bound).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.servers import default_sockjs_node_src, free_port, prepare_sockjs_node

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN = 60.0


def _serve(argv: list[str], cwd: Path, log_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}/ws"
            deadline = time.monotonic() + READY_WITHIN
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
                    pytest.fail(f"{argv[0]} did not answer /ws/info within {READY_WITHIN:.0f} s")
                time.sleep(0.1)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture(scope="module")
def cursorshare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``python -m cursorshare serve``: (SockJS base URL, pid)."""
    log = tmp_path_factory.mktemp("bench") / "cursorshare.log"
    argv = [sys.executable, "-m", "cursorshare", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    yield from _serve(argv, ROOT, log)


@pytest.fixture(scope="module")
def sockjs_node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """benchmarks/sockjs-node/server.js, installed with npm ci into a scratch folder."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the sockjs-node comparison server"
    work = prepare_sockjs_node(
        default_sockjs_node_src(), tmp_path_factory.mktemp("sockjs-node"), log=lambda _: None
    )
    log = tmp_path_factory.mktemp("bench") / "sockjs-node.log"
    yield from _serve([node, "server.js", "{port}", "127.0.0.1"], work, log)
