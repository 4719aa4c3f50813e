"""Fixtures for the multi-node tests: a real redis-server, cursorshare nodes, HAProxy.

Everything runs on 127.0.0.1, on free ports, in the test's tmp dir, and is stopped after the
test. Nodes are subprocesses (`python -m cursorshare serve ... --redis-url ... --node-id nK`),
so a node can be killed with SIGKILL like a crashed machine. The processes are in `procs.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.procs import Cluster, RedisServer


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def cluster(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(redis_server, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
        # Shown by pytest when the test failed.
        print(cluster.logs())
