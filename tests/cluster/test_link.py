"""The Redis backplane's link on its own: subscriptions that outlive connections, and
reconnection, against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis

from cursorshare.backplanes.redis.link import Link
from cursorshare.hub import BackplaneState
from tests.cluster.procs import RedisServer, wait_for

pytestmark = pytest.mark.cluster


class Probe:
    """A link and what it reported: messages, connections, and each session's outage."""

    def __init__(self, url: str) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.connects = 0
        self.ups: list[float | None] = []
        self.farewells = 0
        self.link = Link(
            url,
            ["always"],
            timeout=2.0,
            backoff_min=0.05,
            backoff_max=0.2,
            on_message=lambda channel, data: self.messages.append((channel, data)),
            on_connect=self.on_connect,
            on_up=self.on_up,
        )

    async def on_connect(self, client: Redis) -> None:
        self.connects += 1

    def on_up(self, client: Redis, outage: float | None) -> list[Coroutine[Any, Any, None]]:
        self.ups.append(outage)
        return []

    async def goodbye(self, client: Redis) -> None:
        self.farewells += 1

    async def until(self, check: Any, what: str) -> None:
        async def ready() -> bool:
            return bool(check())

        await wait_for(ready, 5, what)


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[Probe]:
    probe = Probe(redis_server.url)
    yield probe
    await probe.link.stop()


async def test_wanted_channels_outlive_a_lost_connection(
    probe: Probe, redis_server: RedisServer
) -> None:
    link = probe.link
    await link.start()
    assert link.state is BackplaneState.UP and link.client is not None
    assert probe.ups == [None] and probe.connects == 1
    assert await link.subscribe("ch")
    redis = redis_server.client()
    try:
        await redis.publish("ch", "1")
        await probe.until(lambda: probe.messages == [(b"ch", b"1")], "the first message")

        await redis.client_kill_filter(_type="pubsub")
        await probe.until(lambda: len(probe.ups) == 2 and link.subscribed("ch"), "reconnected")
        assert link.outages == 1 and probe.connects == 2
        assert probe.ups[1] is not None and probe.ups[1] >= 0
        await redis.publish("ch", "2")
        await probe.until(lambda: probe.messages[-1:] == [(b"ch", b"2")], "a message after it")

        await link.unsubscribe("ch")
        assert not link.subscribed("ch")
        assert dict(await redis.pubsub_numsub("ch")) == {b"ch": 0}
    finally:
        await redis.aclose()
    await link.stop(probe.goodbye)
    assert probe.farewells == 1
    assert link.state is BackplaneState.DOWN and link.stopped and link.client is None


async def test_started_while_redis_is_away_it_comes_up_with_its_channels(
    probe: Probe, redis_server: RedisServer
) -> None:
    link = probe.link
    redis_server.stop()
    await link.start()  # returns: the node serves its own users meanwhile
    assert link.state is BackplaneState.DOWN
    assert not await link.subscribe("ch")
    await probe.until(lambda: link.outages == 1, "the outage counted")

    await redis_server.start()
    await probe.until(lambda: link.state is BackplaneState.UP, "the link up")
    assert link.subscribed("ch") and link.outages == 1
    assert len(probe.ups) == 1 and probe.ups[0] is not None  # up *again*, after an outage
    redis = redis_server.client()
    try:
        await redis.publish("ch", "hello")
        await probe.until(lambda: probe.messages == [(b"ch", b"hello")], "the message")
    finally:
        await redis.aclose()
    await link.stop(probe.goodbye)
    assert probe.farewells == 1
