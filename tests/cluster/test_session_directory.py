"""Any node serves any request of a session: two SockJS nodes in this process, a real Redis.

Each node is an aiohttp server with one recording echo endpoint and a `SessionDirectory` on
`RedisSessionDirectory`; a node's liveness key is kept by `NodeLiveness`, as the backplane
does. The client picks the node of every request itself, as a round-robin balancer would.
What a request must get is sockjs-protocol 0.3.3's: `o`, `a[...]`, `h`, `c[...]`,
`c[2010,"Another connection still open"]`, 404 for a send to an unknown session.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from cursorshare.backplanes.redis import KeyLayout, RedisSessionDirectory
from cursorshare.backplanes.redis.liveness import NodeLiveness
from cursorshare.sockjs import MsgType, Session, SockjsMessage, add_endpoint
from cursorshare.sockjs.directory import SessionDirectory
from tests.cluster.procs import RedisServer, wait_for
from tests.support.rawhttp import RawConnection

pytestmark = pytest.mark.cluster

HEARTBEAT = 0.5
DISCONNECT = 1.0
RESPONSE_LIMIT = 4096


class Node:
    """One in-process node: its server, its directory, the events its handler saw."""

    def __init__(self, name: str, redis_url: str) -> None:
        self.name = name
        self.redis_url = redis_url
        self.events: list[tuple[str, MsgType, Any]] = []
        self.instance = secrets.token_hex(8)
        self.keys = KeyLayout(f"t{secrets.token_hex(3)}")
        self.server: TestServer | None = None
        self._beat: asyncio.Task[None] | None = None
        self._redis: Redis | None = None

    async def start(self, keys: KeyLayout) -> None:
        self.keys = keys
        self._redis = Redis.from_url(self.redis_url)
        self.liveness = NodeLiveness(keys, self.name, self.instance, ttl=3.0, heartbeat=0.5)
        await self.liveness.claim(self._redis)
        self._beat = asyncio.create_task(self.liveness.beat(self._redis, lambda: None))
        app = web.Application()
        self.manager = add_endpoint(
            app,
            self._handle,
            prefix="/echo",
            heartbeat_delay=HEARTBEAT,
            disconnect_delay=DISCONNECT,
            response_limit=RESPONSE_LIMIT,
        )
        self.backend = RedisSessionDirectory(
            self.redis_url, node_id=self.name, instance=self.instance, keys=keys, endpoint="echo"
        )
        self.directory = SessionDirectory(self.backend)
        self.manager.use_directory(self.directory)
        await self.directory.start()
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()  # with handler_cancellation

    async def _handle(self, msg: SockjsMessage, session: Session) -> None:
        self.events.append((session.id, msg.type, msg.data))
        if msg.type is MsgType.MESSAGE:
            if msg.data == "close":
                session.close(4001, "custom")
            else:
                session.send(msg.data)

    def url(self, session_id: str, transport: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/echo/000/{session_id}/{transport}"))

    def messages(self, session_id: str) -> list[Any]:
        return [d for s, t, d in self.events if s == session_id and t is MsgType.MESSAGE]

    def saw(self, session_id: str, kind: MsgType) -> bool:
        return any(s == session_id and t is kind for s, t, _ in self.events)

    async def die(self) -> None:
        """As a crash: no goodbye, its liveness key gone (as when its TTL runs out)."""
        assert self._beat is not None and self._redis is not None
        self._beat.cancel()
        await self.backend.link.stop()
        await self._redis.delete(self.keys.node(self.name))

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self._beat is not None:
            self._beat.cancel()
        with contextlib.suppress(Exception):
            await self.directory.stop()
        if self._redis is not None:
            await self._redis.aclose()


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    keys = KeyLayout(f"t{secrets.token_hex(3)}")
    a, b = Node("a", redis_server.url), Node("b", redis_server.url)
    try:
        await a.start(keys)
        await b.start(keys)
        yield a, b
    finally:
        await a.stop()
        await b.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def poll(http: aiohttp.ClientSession, node: Node, sid: str) -> str:
    async with http.post(node.url(sid, "xhr")) as response:
        assert response.status == 200
        return await response.text()


async def send(http: aiohttp.ClientSession, node: Node, sid: str, *messages: str) -> int:
    async with http.post(node.url(sid, "xhr_send"), data=orjson.dumps(list(messages))) as response:
        return response.status


def new_id() -> str:
    return secrets.token_hex(6)


async def test_sends_and_polls_on_either_node_reach_the_owner_in_order(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"  # the session lives on a
    expected = []
    for i in range(12):
        node = (a, b)[i % 2]
        assert await send(http, node, sid, f"m{i}", f"n{i}") == 204
        expected += [f"m{i}", f"n{i}"]
    assert a.messages(sid) == expected  # each send delivered once, in order, on its owner
    assert b.messages(sid) == [] and not b.manager.http_session(sid)
    # The echoes come out on a poll through b, as one frame.
    assert await poll(http, b, sid) == "a" + orjson.dumps(expected).decode() + "\n"


async def test_a_poll_through_another_node_gets_messages_heartbeats_and_close(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, b, sid) == "o\n"  # the session lives on b
    # A poll through a waits for the session's next frame: a heartbeat when idle.
    assert await poll(http, a, sid) == "h\n"
    waiting = asyncio.create_task(poll(http, a, sid))
    session = b.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.receiving), 5, "relay attached")
    assert await send(http, b, sid, "x") == 204
    assert await waiting == 'a["x"]\n'
    assert await send(http, a, sid, "close") == 204
    assert await poll(http, a, sid) == 'c[4001,"custom"]\n'
    assert await poll(http, b, sid) == 'c[4001,"custom"]\n'


async def _true(value: object) -> bool:
    return bool(value)


async def test_a_second_receiver_anywhere_gets_2010(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    first = asyncio.create_task(poll(http, b, sid))  # relayed, waiting on a's session
    session = a.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.receiving), 5, "relay attached")
    another = 'c[2010,"Another connection still open"]\n'
    assert await poll(http, a, sid) == another
    assert await poll(http, b, sid) == another
    # The first receiver keeps working.
    assert await send(http, b, sid, "still") == 204
    assert await first == 'a["still"]\n'


async def test_a_send_to_an_unknown_session_is_404_on_every_node(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    for node in nodes:
        assert await send(http, node, new_id(), "x") == 404
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    # Broken JSON is refused by the node that received it, as on one node.
    async with http.post(b.url(sid, "xhr_send"), data=b"[broken") as response:
        assert response.status == 500
        assert await response.text() == "Broken JSON encoding."
    assert a.messages(sid) == []


async def test_disconnect_detection_keeps_its_timing_through_a_relay(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    # Polling through b keeps the session on a alive past several disconnect delays.
    for _ in range(4):
        assert await poll(http, b, sid) == "h\n"
    assert not a.saw(sid, MsgType.CLOSED)
    # An aborted poll through b is an interrupted receiver on a: closed with 1002.
    attached = b.directory.forwarded_out
    aborted = asyncio.create_task(poll(http, b, sid))
    await wait_for(lambda: _true(b.directory.forwarded_out > attached), 5, "relay attached")
    aborted.cancel()
    await wait_for(lambda: _true(a.saw(sid, MsgType.CLOSED)), 5, "session expired on a")
    closes = [d for s, t, d in a.events if s == sid and t is MsgType.CLOSE]
    assert [c.code for c in closes] == [1002]


async def test_streaming_through_another_node_loses_nothing_at_the_response_limit(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    payload = "x" * 1000
    received: list[str] = []
    sent = [f"{i}:{payload}" for i in range(20)]
    for i, message in enumerate(sent):
        assert await send(http, (a, b)[i % 2], sid, message) == 204
    # 20 KB queued: several streams through b, each ending at the 4 KB limit.
    while len(received) < len(sent):
        async with http.post(b.url(sid, "xhr_streaming")) as response:
            body = await response.text()
        for line in body.split("\n")[1:]:
            if line.startswith("a"):
                received += orjson.loads(line[1:])
    assert received == sent


async def test_relays_with_a_dead_node_end_and_its_sessions_are_told_they_are_lost(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    waiting = asyncio.create_task(poll(http, b, sid))
    session = a.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.receiving), 5, "relay attached")
    await a.die()
    # b ends the relayed request (a poll gets a heartbeat): it does not wait for a dead owner.
    # Cleanly, as for an owner taken for dead that was only slow: the client's next request
    # finds out which it was.
    assert await waiting == "h\n"
    # The session ended with a: the client's next poll through b is told so with a close
    # frame, and no session is opened under its id (it would be a ghost: the handler would
    # see it open, and sockjs-client, told "o" on an open session, would drop it at once).
    assert await poll(http, b, sid) == LOST
    assert b.manager.http_session(sid) is None
    assert not b.saw(sid, MsgType.OPEN)


async def test_every_receiving_transport_is_told_its_session_was_lost_with_its_node(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sids = {transport: new_id() for transport in ("xhr", "xhr_streaming", "eventsource")}
    for sid in sids.values():
        assert await poll(http, a, sid) == "o\n"
    await a.die()
    for transport, sid in sids.items():
        method = "GET" if transport == "eventsource" else "POST"
        async with http.request(method, b.url(sid, transport)) as response:
            assert response.status == 200
            body = await response.text()
        assert body.rstrip("\r\n").endswith(LOST.rstrip("\n")), (transport, body)
        assert b.manager.http_session(sid) is None
    assert not any(kind is MsgType.OPEN for _, kind, _ in b.events)


# -- found by the red team (RT15): a relay never outlives its request ------------------------

INTERRUPTED = 'c[1002,"Connection interrupted"]\n'
LOST = 'c[3011,"Session lost"]\n'
ANOTHER = 'c[2010,"Another connection still open"]\n'


async def test_an_attach_left_unanswered_leaves_no_relay_on_the_owner(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    """b gives up on its attach (no answer in time: here at once) and answers 503; a, which
    attaches the relay anyway, must drop it as it drops the relay of an aborted request: the
    session closes 1002 and is forgotten after disconnect_delay, as on one node. Before the
    fix the relay stayed attached for good: every later request got 2010, the session never
    expired."""
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    b.directory.ack_timeout = 0  # b stops waiting before any answer can come
    async with http.post(b.url(sid, "xhr_streaming")) as response:
        assert response.status == 503
    b.directory.ack_timeout = 2.0
    session = a.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.close_reason is not None), 10, "session closed")
    assert await poll(http, a, sid) == INTERRUPTED
    await wait_for(lambda: _true(a.manager.http_session(sid) is None), 10, "session expired")
    assert not b.directory.peers() and not a.directory.peers()


async def test_a_client_gone_while_its_attach_is_out_leaves_no_relay(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    """The client aborts its request through b after a attached the relay and before b
    heard so (b's incoming messages are held back meanwhile)."""
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    held: list[bytes] = []
    deliver = b.directory.receive
    b.directory.receive = held.append  # type: ignore[method-assign]
    request = asyncio.create_task(poll(http, b, sid))
    session = a.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.receiving), 10, "relay attached on a")
    request.cancel()  # the client goes away before b hears that the relay is attached
    with contextlib.suppress(asyncio.CancelledError):
        await request
    b.directory.receive = deliver  # type: ignore[method-assign]
    # b's handler is cancelled with the connection: its question is withdrawn.
    await wait_for(lambda: _true(not b.directory.peers()), 10, "b's request cancelled")
    for data in held:
        deliver(data)
    await wait_for(lambda: _true(session.close_reason is not None), 10, "session closed")
    assert session.close_reason is not None and session.close_reason.code == 1002
    assert await poll(http, a, sid) == INTERRUPTED


async def test_a_relaying_node_that_stops_hands_its_requests_back(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    """SIGTERM on a node that relays a stream and a poll of a's sessions: both end cleanly
    (the stream as at its response_limit, the poll with `h`), a's sessions stay open and go
    on through a, and the stopping node does not wait for them. Before the fix the client's
    connections were dropped after the shutdown timeout and a closed the sessions 1002."""
    a, b = nodes
    streamed, polled = new_id(), new_id()
    assert await poll(http, a, streamed) == "o\n"
    assert await poll(http, a, polled) == "o\n"
    stream = await http.post(b.url(streamed, "xhr_streaming"))
    assert stream.status == 200
    waiting = asyncio.create_task(poll(http, b, polled))
    for sid in (streamed, polled):
        session = a.manager.http_session(sid)
        assert session is not None
        await wait_for(lambda s=session: _true(s.receiving), 5, "relay attached")  # type: ignore[misc]
    await b.manager.shutdown()
    assert await waiting == "h\n"
    body = await asyncio.wait_for(stream.read(), 10)  # ends: the response is complete
    assert body.endswith(b"h\n") and b"c[" not in body  # no close frame: the session goes on
    for sid in (streamed, polled):
        session = a.manager.http_session(sid)
        assert session is not None and session.close_reason is None
        assert await send(http, a, sid, "after") == 204
        assert await poll(http, a, sid) == 'a["after"]\n'


async def test_a_send_whose_client_left_is_delivered_through_another_node(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send that arrived whole is delivered, answered or not: a closing tab sends its last
    message (the app's `bye`) and drops its connections at once. On the session's own node
    nothing waits between the body and the session; a node that relays it waits for the
    owner's lookup, and must not drop it when its request is cancelled meanwhile (found with
    Chromium behind a round-robin HAProxy: tests/browser/test_no_sticky.py)."""
    a, b = nodes
    sid = new_id()
    async with aiohttp.ClientSession() as http:
        assert await poll(http, a, sid) == "o\n"  # the session lives on a
    assert b.server is not None and b.server.runner is not None
    server = b.server.runner.server
    assert isinstance(server, web.Server)
    connection = await RawConnection.open(b.server.port)
    lookup = b.backend.owner

    async def client_leaves_during_the_lookup(session_id: str) -> str | None:
        await connection.close()

        async def b_saw_it_go() -> bool:
            return not server.connections

        await wait_for(b_saw_it_go, 5, "b noticed the client left", interval=0.01)
        return await lookup(session_id)

    monkeypatch.setattr(b.backend, "owner", client_leaves_during_the_lookup)
    path = f"/echo/000/{sid}/xhr_send"
    await connection.send_request("POST", path, body=orjson.dumps(["bye"]))

    async def delivered() -> bool:
        return a.messages(sid) == ["bye"]

    await wait_for(delivered, 5, f"the send delivered on a; got {a.messages(sid)}")


# -- a node taken for dead that is only slow (a stall, a Redis timeout on a loaded machine) ----


async def lapse(node: Node) -> None:
    """As a stall longer than the liveness TTL: the node's key is gone, the node lives on."""
    assert node._beat is not None and node._redis is not None
    node._beat.cancel()
    await node._redis.delete(node.keys.node(node.name))


async def revive(node: Node) -> None:
    """The stall is over: the node's beat writes its key again (same instance)."""
    assert node._redis is not None
    await node.liveness.claim(node._redis)
    node._beat = asyncio.create_task(node.liveness.beat(node._redis, lambda: None))


async def stream(http: aiohttp.ClientSession, node: Node, sid: str) -> str:
    """An xhr_streaming request through ``node``, read to its end: its frames, prelude off."""
    async with http.post(node.url(sid, "xhr_streaming")) as response:
        assert response.status == 200
        return (await response.text()).lstrip("h").lstrip("\n")


async def relayed_stream(
    http: aiohttp.ClientSession, owner: Node, through: Node
) -> tuple[str, Session, asyncio.Task[str]]:
    """A new session held by ``owner``, and an xhr_streaming request of it through
    ``through``, relayed (attached on the owner) when this returns."""
    sid = new_id()
    assert await poll(http, owner, sid) == "o\n"
    streaming = asyncio.create_task(stream(http, through, sid))
    session = owner.manager.http_session(sid)
    assert session is not None
    await wait_for(lambda: _true(session.receiving), 5, "relay attached")
    return sid, session, streaming


async def test_a_relaying_node_taken_for_dead_ends_its_request_and_the_session_lives(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid, session, streaming = await relayed_stream(http, a, b)
    await lapse(b)
    # a lets the relay go, and tells b, which is alive: its response ends cleanly (the
    # client opens the next one), not hanging on a relay nobody feeds, not cut.
    assert set((await streaming).split()) <= {"h"}
    await revive(b)
    assert a.manager.http_session(sid) is session and not a.saw(sid, MsgType.CLOSE)
    assert await send(http, b, sid, "x") == 204
    assert await poll(http, b, sid) == 'a["x"]\n'


async def test_an_owner_taken_for_dead_frees_its_receiver_slot(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    sid, _, streaming = await relayed_stream(http, a, b)
    await lapse(a)
    # b ends its response cleanly and tells a, which is alive, to end the relay: else the
    # relay held the session's one receiver slot, and every next request got 2010.
    assert set((await streaming).split()) <= {"h"}
    await revive(a)
    assert await poll(http, a, sid) != ANOTHER
    assert not a.saw(sid, MsgType.CLOSE)
    assert await send(http, a, sid, "y") == 204
    assert await poll(http, b, sid) == 'a["y"]\n'


async def test_a_send_through_another_node_waits_for_a_slow_owner(
    nodes: tuple[Node, Node], http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team (issue #15): an owner slower than `ack_timeout` (a stall, a loaded machine)
    but alive delivered a send its requester had answered 404, and sockjs-client closed the
    session on that 404. The send now waits for the owner as long as it lives."""
    a, b = nodes
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"  # a holds the session
    receive = a.directory.receive
    held: list[bytes] = []
    release = asyncio.Event()

    def slow_receive(data: bytes) -> None:
        if b'"op":"send"' in data.partition(b"\n")[0] and not held:
            held.append(data)  # a, stalled, gets to it later

            async def later() -> None:
                await release.wait()
                receive(data)

            asyncio.get_running_loop().create_task(later())
            return
        receive(data)

    monkeypatch.setattr(a.directory, "receive", slow_receive)

    async def stream_until(text: str) -> None:  # a's own receiver keeps the session alive
        async with http.post(a.url(sid, "xhr_streaming")) as response:
            seen = ""
            while text not in seen:
                seen += (await response.content.readany()).decode()

    waiting = asyncio.create_task(stream_until('a["late"]'))
    sending = asyncio.create_task(send(http, b, sid, "late"))
    await wait_for(lambda: _true(held), 5, "the send reached the owner")
    await asyncio.sleep(a.directory.ack_timeout + 0.5)  # the stall: longer than ack_timeout
    assert not sending.done()
    release.set()
    assert await sending == 204
    await waiting
    assert a.messages(sid) == ["late"]


async def test_a_mailbox_that_was_away_cuts_what_was_in_flight(
    nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    """Red team (issue #15): a short pub/sub blip (the nodes' subscriptions dropped and made
    again) lost the frame the owner had sent, and the relayed stream then waited for good
    with the session's one receiver slot taken. A node whose mailbox was away now cuts what
    was in flight, on both sides, as a dropped connection: the request ends, the session
    closes (1002) and its client resumes."""
    a, b = nodes
    async with aiohttp.ClientSession() as http:  # no total timeout: the stream must end
        sid, _, streaming = await relayed_stream(http, a, b)
        redis = redis_server.client()
        try:
            await redis.client_kill_filter(_type="pubsub")
        finally:
            await redis.aclose()
        # an upper bound on the event, far below the stream's heartbeats' 25 s default
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.wait_for(streaming, 10)
        await wait_for(lambda: _true(a.saw(sid, MsgType.CLOSE)), 10, "session closed")
