"""Fixtures for the multi-node tests: a real redis-server, cursorshare nodes, HAProxy.

Everything runs on 127.0.0.1, on free ports, in the test's tmp dir, and is stopped after the
test. Nodes are subprocesses (`python -m cursorshare serve ... --redis-url ... --node-id nK`),
so a node can be killed with SIGKILL like a crashed machine. The processes are in `procs.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cursorshare.backplanes.redis import RedisBackplane
from tests.cluster.backplanes import Recorder
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


@pytest.fixture
async def make(
    redis_server: RedisServer,
) -> AsyncIterator[Callable[..., Any]]:
    started: list[RedisBackplane] = []

    async def make(node_id: str, **options: Any) -> tuple[RedisBackplane, Recorder]:
        backplane = RedisBackplane(redis_server.url, node_id=node_id, **options)
        recorder = Recorder()
        await backplane.start(recorder)
        assert backplane.state == "up"
        started.append(backplane)
        return backplane, recorder

    yield make
    for backplane in started:
        await backplane.stop()
