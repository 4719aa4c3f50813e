"""The glue between SockJS sessions and the hub: one member per session, kept for a grace
after its session drops so that its client can resume it (see `identity`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ..hub import JSON, Hub, Member, MemoryTtlStore, StoreUnavailable, TtlStore
from ..sockjs import CloseReason, MsgType, Session, SessionState, SockjsMessage
from ..sockjs.abuselog import AbuseLog
from . import identity, messages, presence
from .dropped import DroppedMembers
from .member import CursorMember
from .messages import ACTIVE, RECONNECTING, TUTORIAL, V2, BadMessage

log = logging.getLogger("cursorshare.cursors")

#: Close code for a session whose `room` query parameter is malformed.
BAD_ROOM = CloseReason(4001, "Invalid room")
#: Close code for a session whose identity a newer session of its key took over (on any node):
#: its client must not present that key again (it would take the identity back, and so on).
TAKEN_OVER = CloseReason(4004, "Resumed by another connection")
#: Close code for a session whose member said bye (by its own message or over HTTP).
BYE = CloseReason(1000, "Bye")
#: Seconds a dropped member outlives its record in the store: a resume that took the record
#: just before it expired reaches this node (and ends the member here) before the leave would.
GRACE_MARGIN = 1.0


class CursorApp:
    """The SockJS handler of the cursor-sharing app."""

    def __init__(
        self,
        hub: Hub,
        *,
        max_message_bytes: int = 4096,
        max_depth: int = messages.MAX_DEPTH,
        resume_grace: float = 120.0,
        max_dropped_per_address: int = 100,
        max_dropped: int = 20_000,
        store: TtlStore | None = None,
    ) -> None:
        self.hub = hub
        self.max_message_bytes = max_message_bytes
        self.max_depth = max_depth
        self.resume_grace = resume_grace
        self.store = store or hub.backplane.shared_store() or MemoryTtlStore()
        self._abuse = AbuseLog(log)
        self._members: dict[Session, CursorMember] = {}
        #: Members whose session dropped, until they resume or their grace ends.
        self._dropped: DroppedMembers[CursorMember] = DroppedMembers(
            per_address=max_dropped_per_address, total=max_dropped
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: This node's v2 members by their key's store key: for a bye that names the key, and
        #: (those with a session) for a key presented again, which takes the identity over.
        self._by_key: dict[str, CursorMember] = {}
        hub.farewell_handler = self._farewell
        hub.handover_handler = self._handed_over

    @property
    def dropped(self) -> int:
        """Members kept for a resume (shown reconnecting) on this node."""
        return len(self._dropped)

    def __len__(self) -> int:
        return len(self._members)

    async def handle(self, msg: SockjsMessage, session: Session) -> None:
        if msg.type is MsgType.MESSAGE:
            member = self._members.get(session)
            if member is not None:
                self._on_message(member, str(msg.data))
        elif msg.type is MsgType.OPEN:
            await self._on_open(session)
        else:  # CLOSE, then CLOSED: whichever comes first ends the session
            member = self._members.pop(session, None)
            if member is not None:
                await self._on_drop(member)

    # -- joining and resuming ----------------------------------------------------------------

    async def _on_open(self, session: Session) -> None:
        query = session.query
        flavour = V2 if query.get("v") == "2" else TUTORIAL
        room = messages.valid_room(query.get("room"))
        try:
            name = messages.clean_name(query.get("name", ""))
        except BadMessage:
            name = ""
        if room is None:
            session.close(*BAD_ROOM)
            return
        key = identity.presented_key(query.get("resume")) if flavour == V2 else None
        found = await self._take(key, room) if key is not None else None
        holder = self._live_holder(key) if key is not None and found is None else None
        if key is not None and found is None and holder is None:
            found = await self._take(key, room, seize=True)  # held live on another node
        # Held (live, or dropped) by another node: told to let it go, silently, once this node
        # speaks for it (a hub takes only a join elsewhere for a move, not stale news).
        elsewhere = found is not None and found["id"] not in self._dropped
        if holder is not None and holder.room == room and holder.session is not None:
            member, users = self._take_over(holder, session)
            found = member.state
        elif found is not None:
            assert key is not None
            member, users = await self._resume(session, room, found, key)
            if elsewhere:
                await self.hub.backplane.hand_over(room, member.id)
        if found is not None:  # (its CLOSE, should the session end already, waits for this)
            member.key_told = True
        else:
            key = identity.new_key() if flavour == V2 else None
            if (joined := await self._join(session, room, flavour, name, key)) is None:
                return
            member, users = joined
        if flavour == V2 and key is not None:
            welcome = messages.welcome(member.state, room, resume=key, resumed=found is not None,
                                       grace=self.resume_grace, users=users)  # fmt: skip
            session.send(welcome)  # first: what the room says next comes after it
        if member is not holder:  # (taken over, it holds its record already)
            await self._hold(member)

    async def _take(self, key: str, room: str, *, seize: bool = False) -> JSON | None:
        """The identity of ``key`` taken from the store; ``seize``: even from its holder, a
        live session on another node (which is then told to let it go)."""
        stored = identity.store_key(key)
        try:
            take = self.store.seize if seize else self.store.take
            record = await take(stored, room)  # (a key of another room leaves it as it is)
        except StoreUnavailable as exc:
            mine = self._by_key.get(stored)  # dropped here: known without the store
            if mine is not None and mine.session is None and mine.id in self._dropped:
                return identity.identity_of(identity.record(mine.state, mine.room), room)
            log.warning("resume store unavailable, a fresh identity is given: %s", exc)
            return None
        found = identity.identity_of(record, room)
        if found is None or found["id"] in self._dropped:
            return found
        # Its record may outlive its grace a little (a dead holder's renewals): the identity
        # comes back only while its member is still present (reconnecting) on some node.
        present = await self.hub.everyone_in(room)
        return found if any(record.member == found["id"] for record in present) else None

    async def _join(
        self, session: Session, room: str, flavour: str, name: str, key: str | None
    ) -> tuple[CursorMember, list[JSON]] | None:
        """A new member; None if its client gave up meanwhile (no join, then leave, is told)."""
        member_id = identity.new_id()
        color = await identity.choose_color(self.hub, room, member_id)
        await self.hub.everyone_in(room)  # the room open: no wait between this check and the join
        if session.state is not SessionState.OPEN:
            return None
        state = presence.first_state(member_id, color, name)
        member = CursorMember(session, room, flavour, state, key)
        self._members[session] = member
        self._know_key(member)
        data = presence.join_data(state)
        present = await self.hub.join(room, member, data, state, grace=self._grace_of(member))
        return member, [record.state for record in present if record.member != member_id]

    async def _resume(
        self, session: Session, room: str, found: JSON, key: str
    ) -> tuple[CursorMember, list[JSON]]:
        """Give the identity ``found`` back to ``session``; the others are told it is active
        again (or, if they saw it leave, that it joined)."""
        member = self._dropped.pop(found["id"])
        here = self.hub.rooms.get(room)
        if member is not None and here is not None and here.members.get(member.id) is member:
            # Still a member here: the same member, with a new session.
            if member.timer is not None:
                member.timer.cancel()
                member.timer = None
            member.session = session
            member.address = session.remote or ""
            self._members[session] = member
            self.hub.backplane.outlive(room, member.id, self._grace_of(member))  # (whole again)
            self._set_status(member, ACTIVE)
            users = [r.state for r in self.hub.presence(room) if r.member != member.id]
            return member, users
        # Held by another node (or by nobody, after a restart): join with the same identity.
        known = any(record.member == found["id"] for record in self.hub.presence(room))
        color = await identity.choose_color(self.hub, room, found["id"], found["color"])
        state = {**presence.first_state(found["id"], color, found["name"]),
                 "pointer": found.get("pointer", "mouse")}  # fmt: skip
        member = CursorMember(session, room, V2, state, key)
        self._members[session] = member
        self._know_key(member)
        data = presence.presence_data(member.id, ACTIVE) if known else presence.join_data(state)
        present = await self.hub.join(room, member, data, state, grace=self._grace_of(member))
        return member, [record.state for record in present if record.member != member.id]

    def _take_over(self, member: CursorMember, session: Session) -> tuple[CursorMember, list[JSON]]:
        """Its key came again while its session here seems alive (a client knows a network
        change long before a server does: docs/protocol.md, Resume). The older session is
        closed with `TAKEN_OVER`: one live session per key, the newest."""
        old = member.session
        assert old is not None
        self._members.pop(old, None)
        member.session = session
        member.address = session.remote or ""
        self._members[session] = member
        old.close(*TAKEN_OVER)
        self._set_status(member, ACTIVE)
        return member, [r.state for r in self.hub.presence(member.room) if r.member != member.id]

    def _live_holder(self, key: str) -> CursorMember | None:
        member = self._by_key.get(identity.store_key(key))
        return member if member is not None and member.session is not None else None

    def _know_key(self, member: CursorMember) -> None:
        if member.resume_key is not None:
            self._by_key[identity.store_key(member.resume_key)] = member

    def _grace_of(self, member: CursorMember) -> float:
        """How long ``member`` may be resumed after its session drops (0: it cannot be)."""
        return self.resume_grace if member.resume_key is not None else 0.0

    def _hold(self, member: CursorMember) -> Coroutine[Any, Any, None]:
        return member.hold_record(self.store, self.resume_grace)

    def _spawn(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a record write without making the caller wait (it is kept until done)."""
        task = asyncio.get_running_loop().create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- leaving ------------------------------------------------------------------------------

    async def _on_drop(self, member: CursorMember) -> None:
        """Its session ended without a bye: the others see it reconnecting, and its key gives
        it back within the grace. A tutorial client (no key), or one whose client never had its
        key (its welcome never left the server), leaves at once: it could never resume."""
        session, member.session = member.session, None
        welcomed = member.key_told or session is None or session.delivered
        log.debug("%s dropped (welcomed: %s)", member.id, welcomed)
        if member.resume_key is None or self.resume_grace <= 0 or not welcomed:
            self._leave(member)
            return
        self.hub.backplane.outlive(member.room, member.id, self.resume_grace, started=True)
        self._set_status(member, RECONNECTING)
        for evicted in self._dropped.add(member):
            self._evict(evicted)
        if member.id not in self._dropped:
            return  # past the bounds itself (a bound of 0)
        loop = asyncio.get_running_loop()
        member.timer = loop.call_later(self.resume_grace + GRACE_MARGIN, self._expire, member)
        try:
            async with member.writes:
                await self.store.put(
                    identity.store_key(member.resume_key),
                    identity.record(member.state, member.room),
                    self.resume_grace,
                    member.room,
                )
        except StoreUnavailable as exc:  # (written once the link is back)
            log.warning("resume store unavailable, %s resumes here only: %s", member.id, exc)

    def _expire(self, member: CursorMember) -> None:
        member.timer = None
        self._dropped.pop(member.id)
        self._leave(member)

    def _evict(self, member: CursorMember) -> None:
        """Past the bounds on dropped members: it leaves now, and its key gives nothing back
        (unless another node resumed it meanwhile: then that node holds the record)."""
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None
        here = self.hub.rooms.get(member.room)
        if here is not None and here.members.get(member.id) is member:
            self._spawn(member.discard_record(self.store))
        self._leave(member)

    def _leave(self, member: CursorMember) -> None:
        self._forget_key(member)
        self.hub.leave(member.room, member, presence.leave_data(member.id))

    async def bye(self, key: str) -> None:
        """The tab with the resume key ``key`` is gone for good (``POST /presence/bye``): its
        member leaves now, wherever it is, and the key gives nothing back. Whatever ``key``
        is, nothing tells the caller whether it named anyone; the work is one store call."""
        stored = identity.store_key(key)
        member = self._by_key.get(stored)
        here = None if member is None else self.hub.rooms.get(member.room)
        if member is not None and here is not None and here.members.get(member.id) is member:
            log.debug("bye by key: %s ends here", member.id)
            self._say_bye(member, close=True)
            return
        try:  # held by another node (live or dropped there), or by nobody (a restart)
            found = await self.store.end(stored)
        except StoreUnavailable as exc:
            log.warning("resume store unavailable, a bye is lost: %s", exc)
            return
        room = None if found is None else found.get("room")
        if found is not None and isinstance(room, str) and isinstance(found.get("id"), str):
            log.debug("bye by key: %s in %s, its holder is asked", found["id"], room)
            await self.hub.backplane.farewell(room, found["id"])
        else:
            log.debug("bye by key: it names no record")

    def _farewell(self, room: str, member: Member) -> None:
        """Another node was told this member's tab is gone: it leaves now."""
        log.debug("farewell for %s (%s)", member.id, type(member).__name__)
        if isinstance(member, CursorMember) and member.resume_key is not None:
            self._say_bye(member, close=True)

    def _handed_over(self, room: str, member: Member) -> None:
        """Another node took this member over (its key came there): its session here is
        closed with `TAKEN_OVER`; it goes silently, its record and presence that node's now."""
        if isinstance(member, CursorMember) and member.resume_key is not None:
            self._end_here(member, TAKEN_OVER)

    def _say_bye(self, member: CursorMember, *, close: bool) -> None:
        """It is gone for good, live or dropped: it leaves now, its key gives nothing back.
        ``close``: its session, if any, is closed too (the bye came over HTTP, not over it)."""
        self._end_here(member, BYE if close else None)
        self._leave(member)

    def _end_here(self, member: CursorMember, reason: CloseReason | None) -> None:
        """Forget ``member`` here (its session closed with ``reason``), and its record."""
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None
        self._dropped.pop(member.id)
        session, member.session = member.session, None
        if session is not None:
            self._members.pop(session, None)
            if reason is not None:
                session.close(*reason)
        self._forget_key(member)
        self._spawn(member.discard_record(self.store))

    def _forget_key(self, member: CursorMember) -> None:  # for a bye naming its key
        stored = None if member.resume_key is None else identity.store_key(member.resume_key)
        if stored is not None and self._by_key.get(stored) is member:
            del self._by_key[stored]

    # -- messages -----------------------------------------------------------------------------

    def _set_status(self, member: CursorMember, status: str) -> None:
        if member.state.get("status") == status:
            return
        member.state = {**member.state, "status": status}
        data = presence.presence_data(member.id, status)
        self.hub.notify(member.room, member, data, member.state)

    def _on_message(self, member: CursorMember, raw: str) -> None:
        try:
            # A character is at most 4 bytes: short messages skip the encode.
            if len(raw) * 4 > self.max_message_bytes and len(raw.encode()) > self.max_message_bytes:
                raise BadMessage("message too large")
            if member.flavour == V2:
                self._v2_message(member, messages.parse_v2(raw, self.max_depth))
            else:
                self._tutorial_move(member, raw)
        except BadMessage as exc:
            self._refuse(member, str(exc))

    def _v2_message(self, member: CursorMember, message: messages.V2Message) -> None:
        if isinstance(message, messages.Status):
            self._set_status(member, message.status)
            return
        if isinstance(message, messages.Bye):  # the tab is gone for good: no grace
            log.debug("bye over the session: %s", member.id)
            self._say_bye(member, close=False)
            return
        self._set_status(member, ACTIVE)  # a move means active
        state = member.state
        name = state["name"] if message.name is None else message.name
        pointer = message.pointer or state.get("pointer", "mouse")
        member.state = {**state, "x": message.x, "y": message.y, "px": False, "name": name,
                        "pointer": pointer}  # fmt: skip
        if name != state["name"] or pointer != state.get("pointer", "mouse"):
            self._spawn(self._hold(member))  # its resume record gives back the name it has now
        data = {"type": "move", "sender": member.id, "color": state["color"], "name": name,
                "x": message.x, "y": message.y, "pointer": pointer}  # fmt: skip
        self.hub.update(member.room, member, data, member.state)

    def _tutorial_move(self, member: CursorMember, raw: str) -> None:
        data = messages.parse_tutorial_move(raw, self.max_depth)
        data["sender"] = member.id
        data["color"] = member.state["color"]
        member.state = {**member.state, "x": data["x"], "y": data["y"], "px": True}
        self.hub.update(member.room, member, data, member.state)

    def _refuse(self, member: CursorMember, reason: str) -> None:
        session = member.session
        if session is None:
            return
        if not member.warned:  # one line per misbehaving session, and few per address
            member.warned = True
            self._abuse.warn(session.remote, "refused message from %s: %s", member.id, reason)
        if member.flavour == V2:
            session.send(messages.error(reason))
