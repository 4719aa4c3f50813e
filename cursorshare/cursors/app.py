"""The glue between SockJS sessions and the hub: one member per session."""

from __future__ import annotations

import itertools
import logging
import secrets

from ..hub import JSON, Hub
from ..sockjs import CloseReason, MsgType, Session, SockjsMessage
from ..sockjs.abuselog import AbuseLog
from ..sockjs.messages import SLOW_CONSUMER
from . import messages, presence
from .messages import TUTORIAL, V2, BadMessage

log = logging.getLogger("cursorshare.cursors")

#: Close code for a session whose `room` query parameter is malformed.
BAD_ROOM = CloseReason(4001, "Invalid room")


class CursorMember:
    """A SockJS session seen as a hub member."""

    __slots__ = ("color", "flavour", "id", "name", "room", "session", "state", "warned")

    def __init__(self, session: Session, room: str, flavour: str, color: str, name: str) -> None:
        self.id = secrets.token_hex(4)
        self.session = session
        self.room = room
        self.flavour = flavour
        self.color = color
        self.name = name
        #: Its presence state (see `presence`): replaced, never mutated, on each change.
        self.state: JSON = {}
        self.warned = False

    @property
    def backlog(self) -> int:
        return self.session.backlog

    def deliver(self, payload: bytes) -> None:
        self.session.send_frame(payload)

    def overflow(self) -> None:
        self.session.close(*SLOW_CONSUMER)


class CursorApp:
    """The SockJS handler of the cursor-sharing app."""

    def __init__(
        self, hub: Hub, *, max_message_bytes: int = 4096, max_depth: int = messages.MAX_DEPTH
    ) -> None:
        self.hub = hub
        self.max_message_bytes = max_message_bytes
        self.max_depth = max_depth
        self._abuse = AbuseLog(log)
        self._members: dict[Session, CursorMember] = {}
        self._colors = itertools.cycle(messages.PALETTE)

    def __len__(self) -> int:
        return len(self._members)

    async def handle(self, msg: SockjsMessage, session: Session) -> None:
        if msg.type is MsgType.MESSAGE:
            member = self._members.get(session)
            if member is not None:
                self._on_message(member, str(msg.data))
        elif msg.type is MsgType.OPEN:
            await self._on_open(session)
        else:  # CLOSE, then CLOSED: whichever comes first ends the membership
            member = self._members.pop(session, None)
            if member is not None:
                self.hub.leave(member.room, member, presence.leave_data(member.id))

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
        member = CursorMember(session, room, flavour, next(self._colors), name)
        self._members[session] = member
        member.state = presence.first_state(member.id, member.color, name)
        present = await self.hub.join(room, member, presence.join_data(member.state), member.state)
        if flavour == V2:
            users = [record.state for record in present]
            session.send(messages.welcome(member.id, member.color, room, users))

    def _on_message(self, member: CursorMember, raw: str) -> None:
        try:
            # A character is at most 4 bytes: short messages skip the encode.
            if len(raw) * 4 > self.max_message_bytes and len(raw.encode()) > self.max_message_bytes:
                raise BadMessage("message too large")
            if member.flavour == V2:
                data, state = self._v2_move(member, raw)
            else:
                data, state = self._tutorial_move(member, raw)
        except BadMessage as exc:
            self._refuse(member, str(exc))
            return
        member.state = {**member.state, **state}
        self.hub.update(member.room, member, data, member.state)

    def _v2_move(self, member: CursorMember, raw: str) -> tuple[JSON, JSON]:
        x, y, name = messages.parse_v2_move(raw, self.max_depth)
        if name is not None:
            member.name = name
        data = {
            "type": "move",
            "sender": member.id,
            "color": member.color,
            "name": member.name,
            "x": x,
            "y": y,
        }
        return data, {"x": x, "y": y, "px": False, "name": member.name}

    def _tutorial_move(self, member: CursorMember, raw: str) -> tuple[JSON, JSON]:
        data = messages.parse_tutorial_move(raw, self.max_depth)
        data["sender"] = member.id
        data["color"] = member.color
        return data, {"x": data["x"], "y": data["y"], "px": True}

    def _refuse(self, member: CursorMember, reason: str) -> None:
        if not member.warned:  # one line per misbehaving session, and few per address
            member.warned = True
            self._abuse.warn(
                member.session.remote, "refused message from %s: %s", member.id, reason
            )
        if member.flavour == V2:
            member.session.send(messages.error(reason))
