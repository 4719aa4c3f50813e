"""The link to Redis: one connection session at a time, its subscriptions, and reconnection.

A supervisor runs sessions one after another. A session connects, lets its user prepare
(`on_connect`), subscribes every wanted channel (waiting for Redis to confirm: anything
published afterwards reaches this node), is then ``up`` and runs its user's workers
(`on_up`) until one of them fails or a command elsewhere reports the link lost (`failed`).
When the session ends the link is ``down``: the outage is logged once, and the supervisor
reconnects with exponential backoff (capped at ``backoff_max``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ...hub import BackplaneState

log = logging.getLogger("cursorshare.backplanes.redis")

#: What a lost link to Redis raises.
LINK_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

OnMessage = Callable[[bytes, bytes], None]
OnConnect = Callable[[Redis], Awaitable[None]]
#: Called once the session is up, with how long the link had been down (None: first time);
#: returns the session's workers.
OnUp = Callable[[Redis, float | None], list[Coroutine[Any, Any, None]]]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]], patience: float = 0.25) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again those that go on: on
    Python 3.11 a cancellation can be lost (redis-py sends every command under
    ``asyncio.wait_for``, which swallows a cancel that lands as the send completes)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for _ in range(20):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=patience)
    else:
        log.error("%d backplane tasks would not stop", len(pending))
    # Several tasks can fail with the same lost link; the first failure was reported, the
    # others are the same outage and must not surface later as "never retrieved".
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


class Link:
    def __init__(
        self,
        url: str,
        channels: Iterable[str],
        *,
        timeout: float,
        backoff_min: float,
        backoff_max: float,
        on_message: OnMessage,
        on_connect: OnConnect,
        on_up: OnUp,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.outages = 0
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_up = on_up

        self._state = BackplaneState.DOWN
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Future[None] | None = None
        self._down_since: float | None = None

        #: Subscribed in every session: ``channels`` (at least one: a pub/sub connection
        #: reads nothing before its first subscription) and those asked for since.
        self._wanted: set[str] = set(channels)
        if not self._wanted:
            raise ValueError("a link needs at least one channel")
        # The current session's; None (empty) while the link is down.
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._failed: asyncio.Event | None = None
        self._subscribed: set[str] = set()
        self._sub_lock = asyncio.Lock()
        self._sub_waiters: dict[bytes, asyncio.Future[None]] = {}

    @property
    def state(self) -> BackplaneState:
        return self._state

    @property
    def client(self) -> Redis | None:
        """The current session's client (None while the link is down)."""
        return self._client

    @property
    def stopped(self) -> bool:
        return self._stopping and self._supervisor is None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the supervisor; returns once the first session is up, or failed, or after
        ``timeout`` (the node serves its own users either way)."""
        loop = asyncio.get_running_loop()
        self._first_attempt = loop.create_future()
        self._supervisor = loop.create_task(self._supervise(), name="redis-backplane")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._first_attempt), self.timeout)

    async def stop(self, last_words: Callable[[Redis], Awaitable[None]] | None = None) -> None:
        """End the link for good; ``last_words`` runs first, when the link is up."""
        self._stopping = True
        client = self._client
        if last_words is not None and client is not None and self._state is BackplaneState.UP:
            try:
                await asyncio.wait_for(last_words(client), self.timeout)
            except LINK_ERRORS as exc:
                log.warning("could not say goodbye to Redis: %s", exc)
        if self._supervisor is not None:
            await cancel_and_wait([self._supervisor])
            self._supervisor = None
        if self._closing is not None:
            await asyncio.wait([self._closing], timeout=self.timeout)
        self._state = BackplaneState.DOWN

    def failed(self, exc: BaseException) -> None:
        """A command of the current session failed: end the session (the supervisor
        reconnects)."""
        log.debug("Redis backplane error: %s", exc)
        if self._failed is not None:
            self._failed.set()

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> bool:
        """Receive ``channel`` from now on, and in every later session. True once Redis has
        confirmed it; False while the link is down."""
        self._wanted.add(channel)
        return await self._sync([channel])

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        await self._sync([channel])

    def subscribed(self, channel: str) -> bool:
        return channel in self._subscribed

    async def _sync(self, channels: Iterable[str]) -> bool:
        """Make the subscriptions of ``channels`` match the wanted ones (whichever call ran
        last, a subscribe and an unsubscribe of one channel end as it is wanted now)."""
        async with self._sub_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return False
            channels = list(channels)
            add = [c for c in channels if c in self._wanted and c not in self._subscribed]
            drop = [c for c in channels if c not in self._wanted and c in self._subscribed]
            if drop:
                self._subscribed.difference_update(drop)
                await pubsub.unsubscribe(*drop)
            if add:
                waiters = [self._waiter(channel) for channel in add]
                await pubsub.subscribe(*add)
                await asyncio.wait_for(asyncio.gather(*waiters), self.timeout)
                self._subscribed.update(add)
            return True

    def _waiter(self, channel: str) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Failed waiters nobody awaits any more must not be logged as unretrieved.
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._sub_waiters[channel.encode()] = waiter
        return waiter

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                self._on_message(message["channel"], message["data"])
            elif kind == "subscribe":
                waiter = self._sub_waiters.pop(message["channel"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    # -- sessions -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.backoff_min
        while not self._stopping:
            error: BaseException | None = None
            connected_at = loop.time()
            try:
                await self._session()
            except LINK_ERRORS as exc:
                error = exc
            except Exception as exc:  # a bug must not end the node's link for good
                log.exception("Redis backplane session failed")
                error = exc
            finally:
                if self._first_attempt is not None and not self._first_attempt.done():
                    self._first_attempt.set_result(None)
            if self._stopping:
                break
            if self._down_since is None:
                self._down_since = loop.time()
                self.outages += 1
                log.warning(
                    "Redis backplane down (%s): serving local users only, reconnecting to %s",
                    error or "connection lost",
                    self.url,
                )
            if loop.time() - connected_at > self.backoff_max * 4:
                backoff = self.backoff_min  # it had been up for a while: retry at once
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),  # the supervisor reconnects, with its own backoff
            health_check_interval=0,
        )
        pubsub = client.pubsub()
        failed = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            await asyncio.wait_for(client.ping(), self.timeout)
            await self._on_connect(client)
            self._client, self._pubsub, self._failed = client, pubsub, failed
            async with self._sub_lock:
                # Every wanted channel; the confirmations also prove the reader works.
                channels = sorted(self._wanted)
                waiters = [self._waiter(channel) for channel in channels]
                await pubsub.subscribe(*channels)
                tasks.append(loop.create_task(self._read(pubsub)))
                await asyncio.wait_for(asyncio.gather(*waiters), self.timeout)
                self._subscribed = set(channels)
            self._state = BackplaneState.UP
            outage = None if self._down_since is None else loop.time() - self._down_since
            self._down_since = None
            tasks += [loop.create_task(worker) for worker in self._on_up(client, outage)]
            if self._first_attempt is not None and not self._first_attempt.done():
                self._first_attempt.set_result(None)
            failure = loop.create_task(failed.wait())
            try:
                done, _ = await asyncio.wait([*tasks, failure], return_when="FIRST_COMPLETED")
            finally:
                failure.cancel()
            for task in done:
                if task is not failure and not task.cancelled():
                    task.result()  # raises what ended it
        finally:
            if not self._stopping:
                self._state = BackplaneState.DOWN
            self._client = self._pubsub = self._failed = None
            self._subscribed = set()
            for waiter in self._sub_waiters.values():
                if not waiter.done():
                    waiter.set_exception(RedisConnectionError("the link to Redis was lost"))
            self._sub_waiters = {}
            # Closing goes on even if this is cancelled (stop() waits for it).
            self._closing = loop.create_task(self._close(tasks, pubsub, client))
            await asyncio.shield(self._closing)

    @staticmethod
    async def _close(tasks: list[asyncio.Task[None]], pubsub: PubSub, client: Redis) -> None:
        await cancel_and_wait(tasks)
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await client.aclose()
