"""Sessions reachable from every node: who holds a session, and the messages between nodes.

Without sticky routing a session's requests land on any node. A session lives on the node
that received its first request (its owner); a `DirectoryBackend` (Redis:
`cursorshare/backplanes/redis/sessions.py`) records owners and carries messages between
nodes. `SessionDirectory` is the protocol's side of it, consulted only when a request names a
session this node does not hold:

- a receiving request either claims the id (nobody live holds it: the session is created here,
  as on a single node) or attaches to the owner's session through a relay (`remote.py`);
- a send is forwarded to the owner and answered when the owner acknowledges it.

Messages are a JSON header, a newline and an opaque body (a frame, or a send's payload as the
client sent it). A send waits for the owner's answer for as long as the owner lives (at most
``send_timeout``): a slow owner (a stall, a loaded machine) delays the send's 204 as it would
on one node, instead of failing a send it then delivers; a dead one is found by its liveness
and the send gets 404. Other answers come within ``ack_timeout`` or the request is failed
(a receiving request gets 503). When the backend finds a peer dead, requests relayed to or
from it end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from .frames import BrokenFrame, decode_messages
from .remote import Header, Relay, RemoteSession, SessionGone, SessionLost

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("cursorshare.sockjs")


class SessionHost(Protocol):
    """What the directory needs of the node's session manager (no import of it: the manager
    uses the directory)."""

    def http_ids(self) -> list[str]:
        """The ids of the HTTP sessions this node holds."""

    def http_session(self, session_id: str) -> Session | None:
        """The live HTTP session of this node named ``session_id``."""


#: Seconds a node waits for another node's answer (an ack, an attach) by default.
ACK_TIMEOUT = 2.0
#: Seconds a forwarded send waits at most for a live owner's answer (a dead owner is found
#: sooner, by its liveness: the send then gets 404).
SEND_TIMEOUT = 30.0

#: Answers to `ask`; everything else is a request or a stream message.
_ANSWERS = frozenset({"ack", "attached", "busy", "gone"})


class DirectoryListener(Protocol):
    """What a backend tells its directory (implemented by `SessionDirectory`)."""

    def receive(self, data: bytes) -> None:
        """A message for this node arrived."""

    def peers(self) -> set[str]:
        """The peers this node has relays or requests with (the backend watches them)."""

    def peers_lost(self, peers: set[str]) -> None:
        """Those peers are dead."""

    def link_reset(self) -> None:
        """This node's mailbox was away (its link to the backend broke and came back):
        messages to it meanwhile may be lost."""

    def owned(self) -> list[str]:
        """The ids of the sessions this node holds (their records are kept fresh)."""


class DirectoryBackend(Protocol):
    """The shared component: a record of owners, and a mailbox per node."""

    @property
    def me(self) -> str:
        """This node as its peers name it (a node and its process: a restart is a new peer)."""

    async def claim(self, session_id: str) -> str | None:
        """Record this node as the owner unless a live peer is: None, or that peer; "" (and
        no claim) when the record names a dead owner: the session was lost with its node."""

    async def owner(self, session_id: str) -> str | None:
        """The live peer that holds ``session_id`` (None: no other node does)."""

    def release(self, session_id: str) -> None:
        """This node's session ended: drop its record (unless someone re-claimed it)."""

    def post(self, peer: str, data: bytes) -> None:
        """Queue a message for ``peer``; messages to one peer keep their order."""

    def forget_owner(self, session_id: str) -> None:
        """What `owner` said of ``session_id`` is stale (its owner failed a send)."""

    async def start(self, listener: DirectoryListener) -> None: ...

    async def stop(self) -> None: ...


class SessionDirectory:
    """One endpoint's view of the sessions of every node (see the module docstring)."""

    def __init__(
        self,
        backend: DirectoryBackend,
        *,
        ack_timeout: float = ACK_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.ack_timeout = ack_timeout
        self.send_timeout = send_timeout
        self._manager: SessionHost | None = None
        self._rids = (f"{secrets.token_hex(4)}.{n}" for n in itertools.count())
        self._asks: dict[str, tuple[str, asyncio.Future[Header]]] = {}
        self._remotes: dict[str, RemoteSession] = {}
        self._relays: dict[str, Relay] = {}
        #: Per session: the lock that keeps its forwarded sends in order, and its users.
        self._send_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set when the last relayed request of this node ends (see `settle`).
        self._settled: asyncio.Future[None] | None = None
        #: Sends and attaches served for other nodes, and those forwarded to them.
        self.forwarded_in = 0
        self.forwarded_out = 0

    def bind(self, manager: SessionHost) -> None:
        self._manager = manager

    async def start(self) -> None:
        await self.backend.start(self)

    async def stop(self) -> None:
        for remote in list(self._remotes.values()):
            remote.on_lost()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.stop()

    # -- a request for a session this node does not hold -------------------------------------

    async def open_remote(self, session_id: str, *, once: bool) -> RemoteSession | None:
        """For a receiving request: the owner's session with a relay asked for, or None when
        this node has claimed the id (the caller creates the session). Raises `SessionLost`
        when the id names a session of a node that died: a new session under it would be a
        ghost, opened for the handler and dropped by the client at once (sockjs-client closes
        on a second `o`: "Server lost session")."""
        for _ in range(3):  # an owner that answers "gone" has just released the id
            owner = await self.backend.claim(session_id)
            if owner is None:
                return None
            if not owner:
                raise SessionLost(session_id)
            remote = RemoteSession(self, session_id, owner, next(self._rids))
            self._remotes[remote.rid] = remote
            try:
                outcome = await remote.attach(once=once)
            except BaseException:
                # No answer in time, or the client went away: the owner may attach the relay
                # all the same, and must drop it as for any aborted request.
                self.post(owner, {"op": "abort", "rid": remote.rid})
                self.forget(remote.rid)
                raise
            if not remote.attached:
                self.forget(remote.rid)
            if outcome != "gone":
                self.forwarded_out += 1
                return remote
        raise SessionGone(session_id)

    async def find_remote(self, session_id: str) -> RemoteSession | None:
        """For a send: the session on its owner, or None when no node holds it."""
        owner = await self.backend.owner(session_id)
        if owner is None:
            return None
        self.forwarded_out += 1
        return RemoteSession(self, session_id, owner, "")

    def released(self, session_id: str) -> None:
        """A session of this node is gone."""
        self.backend.release(session_id)

    # -- Courier --------------------------------------------------------------------------------

    def post(self, peer: str, header: Header, body: bytes = b"") -> None:
        header["from"] = self.backend.me
        self.backend.post(peer, orjson.dumps(header) + b"\n" + body)

    async def ask(self, peer: str, header: Header, body: bytes = b"") -> Header:
        rid = header.setdefault("rid", next(self._rids))
        answer: asyncio.Future[Header] = asyncio.get_running_loop().create_future()
        self._asks[rid] = (peer, answer)
        try:
            self.post(peer, header, body)
            patience = self.send_timeout if header["op"] == "send" else self.ack_timeout
            reply = await asyncio.wait_for(answer, patience)
            if header["op"] == "send" and not reply.get("ok"):
                self.backend.forget_owner(header["sid"])
            return reply
        except TimeoutError:
            self.backend.forget_owner(header["sid"])
            log.warning(
                "node %s did not answer %s of session %s", peer, header["op"], header["sid"]
            )
            raise SessionGone(header["sid"]) from None
        finally:
            self._asks.pop(rid, None)

    def forget(self, rid: str) -> None:
        self._remotes.pop(rid, None)
        self._relays.pop(rid, None)
        settled = self._settled
        if not self._remotes and settled is not None and not settled.done():
            settled.set_result(None)

    async def settle(self, within: float) -> None:
        """Wait, at most ``within`` seconds, for the requests this node relays to end by
        themselves. When every node stops at once (the workers of one machine), their owners
        are closing those sessions too and send the close frames; handing the requests back
        first would end them without one."""
        if not self._remotes:
            return
        self._settled = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled, within)

    # -- DirectoryListener ------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        head, _, body = data.partition(b"\n")
        try:
            header: Header = orjson.loads(head)
            op, rid = header["op"], header.get("rid", "")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("dropped a malformed message between nodes: %r", head[:80])
            return
        if op in _ANSWERS:
            _, answer = self._asks.get(rid, (None, None))
            if answer is not None and not answer.done():
                answer.set_result(header)
        elif op == "send":
            self._spawn(self._serve_send(header, body))
        elif op == "attach":
            self._open_relay(header)
        elif op == "leave":
            relay = self._relays.get(rid)
            if relay is not None:
                relay.ended(False)
            self.post(header["from"], {"op": "ack", "rid": rid, "ok": True})
        elif op in ("pull", "done", "abort"):
            relay = self._relays.get(rid)
            if relay is not None:
                relay.pull() if op == "pull" else relay.ended(op == "abort")
        elif op == "reset":  # the peer's mailbox was away: what was asked of it may be lost
            self._fail_asks({header["from"]})
        elif (remote := self._remotes.get(rid)) is None:
            return  # (a frame, drop or release for a request that ended meanwhile)
        elif op == "frame":
            remote.on_frame(body)
        elif op == "drop":
            remote.on_lost()
        elif op == "release":
            remote.on_released()

    def peers(self) -> set[str]:
        return (
            {remote.peer for remote in self._remotes.values()}
            | {relay.peer for relay in self._relays.values()}
            | {peer for peer, _ in self._asks.values()}
        )

    def peers_lost(self, peers: set[str]) -> None:
        # A peer taken for dead may only have been slow (a process held off its CPU, a Redis
        # timeout on a loaded machine). Each link is cut on both sides, so that if it lives
        # no request of its hangs on a relay nobody feeds and no relay of its holds a
        # session's one receiver slot (2010 to every next request); and cut cleanly: the
        # clients' next requests find their sessions anew, wherever they are.
        self._cut(peers, cleanly=True)
        self._fail_asks(peers)

    def link_reset(self) -> None:
        # Frames, pulls, ends or sends posted to this node while its mailbox was away may be
        # lost: a relayed stream would wait for good for a frame or a pull that never comes,
        # and a session would go on missing messages. Every link in flight is cut as a
        # dropped connection is (the session closes 1002, its client resumes), on both
        # sides, and each peer is told, so it fails what it asked of this node meanwhile.
        peers = self.peers()
        cut = self._cut(peers, cleanly=False)
        self._fail_asks(peers)
        for peer in peers:
            self.post(peer, {"op": "reset"})
        if cut:
            log.warning("mailbox was away: %d relayed requests cut", cut)

    def _cut(self, peers: set[str], *, cleanly: bool) -> int:
        """End every relay and remote session with ``peers``, telling each peer of its end:
        ``cleanly`` (the response ends, the session lives) or as a dropped connection (the
        session closes 1002). Returns how many were cut."""
        remotes = [r for r in self._remotes.values() if r.peer in peers]
        relays = [r for r in self._relays.values() if r.peer in peers]
        for remote in remotes:
            self.post(remote.peer, {"op": "done" if cleanly else "abort", "rid": remote.rid})
            remote.on_released() if cleanly else remote.on_lost()
        for relay in relays:
            self.post(relay.peer, {"op": "release" if cleanly else "drop", "rid": relay.rid})
            relay.ended(not cleanly)
        return len(remotes) + len(relays)

    def _fail_asks(self, peers: set[str]) -> None:
        for peer, answer in list(self._asks.values()):
            if peer in peers and not answer.done():
                answer.set_result({"op": "gone"})

    def owned(self) -> list[str]:
        return self._manager.http_ids() if self._manager is not None else []

    # -- serving other nodes' requests ------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_send(self, header: Header, body: bytes) -> None:
        session_id, peer = header["sid"], header["from"]
        # One session's sends are handed over in the order they arrived, as on one node.
        lock, users = self._send_locks.setdefault(session_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                session = self._manager.http_session(session_id) if self._manager else None
                try:
                    messages = decode_messages(body) if session is not None else None
                except BrokenFrame:
                    messages = None
                if session is not None and messages is not None:
                    self.forwarded_in += 1
                    await session.deliver(messages)
                self.post(peer, {"op": "ack", "rid": header["rid"], "ok": messages is not None})
        finally:
            users[0] -= 1
            if not users[0]:
                del self._send_locks[session_id]

    def _open_relay(self, header: Header) -> None:
        session_id, peer, rid = header["sid"], header["from"], header["rid"]
        session = self._manager.http_session(session_id) if self._manager else None
        if session is None:
            self.post(peer, {"op": "gone", "rid": rid})
            return
        # Filed before any await: an abort right behind the attach (the requester gave up on
        # it) must find the relay.
        relay = Relay(
            self, session, peer, rid, once=bool(header.get("once")), patience=self.ack_timeout
        )
        self._relays[rid] = relay
        self._spawn(self._serve_attach(relay))

    async def _serve_attach(self, relay: Relay) -> None:
        session, peer, rid = relay.session, relay.peer, relay.rid
        if not await session.connect(relay):
            self._relays.pop(rid, None)
            self.post(peer, {"op": "busy", "rid": rid})
            return
        if self._relays.get(rid) is not relay:  # aborted while connecting
            session.detach(relay, interrupted=True)
            return
        self.forwarded_in += 1
        self.post(peer, {"op": "attached", "rid": rid})
        relay.wake()

    # -- this node stopping -------------------------------------------------------------------

    async def hand_back(self) -> None:
        """End every request this node relays, cleanly: the sessions stay with their owners,
        and their clients' next requests reach them through another node."""
        await asyncio.gather(
            *(remote.leave() for remote in list(self._remotes.values())),
            return_exceptions=True,
        )
