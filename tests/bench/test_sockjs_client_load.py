"""The second load generator, benchmarks/sockjs_client_load/load.mjs (sockjs-client 1.6.1 in
node), against our server: a short run of 4 clients in 2 rooms must see every move of its own
room (coverage 1.0, superseded moves counted as delivered) and none of the other room's.

The point of load.mjs is that its senders and receivers are sockjs-client's own, so its
figures cross-check `cursorshare bench` (docs/benchmarks.md); this test keeps it working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.npm import npm_ci

LOAD_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "sockjs_client_load"
#: Upper bound on one node run (it normally takes about 3 s: open, 0.5 s warmup, 1 s, drain).
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def load_mjs() -> Path:
    """The pinned sockjs-client, installed once (again only when the lock file changed)."""
    return npm_ci(LOAD_DIR) / "load.mjs"


@pytest.mark.parametrize("transport", ["xhr-polling", "websocket"])
def test_every_move_of_its_room_and_none_of_another(
    load_mjs: Path, cursorshare_server: tuple[str, int], transport: str
) -> None:
    url, _ = cursorshare_server
    node = shutil.which("node")
    assert node, "load.mjs needs node"
    # (Rooms 0 and 1 get clients 0, 2 and 1, 3: a cross-room leak would be a move of the other
    # pair, booked as an error by every receiver.)
    argv = [node, str(load_mjs), "--url", url, "--transport", transport, "--clients", "4",
            "--rooms", "2", "--rate", "30", "--duration", "1", "--warmup", "0.5",
            "--drain", "1"]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, "NODE_ENV": "production"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["transport"] == transport
    assert result["connected"] == 4
    # 4 clients at 30 Hz for a 1 s window: about 120 moves, each due to 2 receivers.
    assert result["sent"] > 60
    assert result["coverage"] == 1.0
    assert result["room_coverage_min"] == 1.0
    assert result["cross_room"] == 0
    assert result["errors"] == 0, result["last_error"]
    assert result["foreign"] == 0
    assert result["latency_p99_ms"] is not None
