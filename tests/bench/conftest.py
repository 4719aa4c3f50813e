"""Servers for the load-client tests: cursorshare, and the sockjs-node comparison server.

Each runs as a subprocess on a free port of 127.0.0.1 for the whole module and is stopped
afterwards (`tests.support.server.ServerProcess`); a fixture returns once the server answers
(``GET /healthz``, ``GET /ws/info`` for sockjs-node), with a generous upper bound on the wait.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.servers import default_sockjs_node_src, prepare_sockjs_node
from tests.support.server import ServerExited, ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN = 60.0


def _serve(server: ServerProcess) -> Iterator[tuple[str, int]]:
    try:
        server.start(READY_WITHIN)
    except (ServerExited, TimeoutError) as exc:
        pytest.fail(str(exc))
    try:
        yield server.url + "/ws", server.pid
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cursorshare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``python -m cursorshare serve``: (SockJS base URL, pid)."""
    log = tmp_path_factory.mktemp("bench") / "cursorshare.log"
    yield from _serve(ServerProcess.cursorshare(log=log))


@pytest.fixture(scope="module")
def sockjs_node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """benchmarks/sockjs-node/server.js, installed with npm ci into a scratch folder."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the sockjs-node comparison server"
    work = prepare_sockjs_node(
        default_sockjs_node_src(), tmp_path_factory.mktemp("sockjs-node"), log=lambda _: None
    )
    log = tmp_path_factory.mktemp("bench") / "sockjs-node.log"
    port = free_port()
    argv = [node, "server.js", str(port), "127.0.0.1"]
    yield from _serve(ServerProcess(argv, port=port, cwd=work, log=log, ready_path="/ws/info"))
