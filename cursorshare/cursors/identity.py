"""Who a member is across reconnections: resume keys, the identity they give back, and the
colour a newcomer gets in its room.

A v2 client is given a resume key in its welcome (unguessable: 192 random bits) and presents
it when it reconnects (``resume=`` in the SockJS URL). The key itself is kept nowhere: the
store holds its SHA-256 under the identity (id, colour, name, room). The record is put when a
session ends without a bye, with the grace as its TTL, and taken (removed) when a key is
presented: so a key gives its identity back once, within the grace, to one session at a time.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ..hub import JSON, Hub, least_used
from .messages import PALETTE

_KEY = re.compile(r"[A-Za-z0-9_-]{32}")


def new_key() -> str:
    return secrets.token_urlsafe(24)  # 192 bits, 32 characters


def new_id() -> str:
    """A member id: public (every member of the room sees it); 64 random bits, so the ids of
    a room never collide in practice (with 32 bits, ~77 000 members collide at even odds)."""
    return secrets.token_hex(8)


def store_key(key: str) -> str:
    """Where the identity of ``key`` is kept (a key that is never stored or logged)."""
    return "resume:" + hashlib.sha256(key.encode()).hexdigest()


def presented_key(value: str | None) -> str | None:
    """The key a client presented, None when it presented none or something no server gave."""
    return value if value is not None and _KEY.fullmatch(value) else None


def record(state: JSON, room: str) -> JSON:
    """What a resume key gives back: the member's identity in ``room``."""
    return {"id": state["id"], "color": state["color"], "name": state["name"], "room": room,
            "pointer": state.get("pointer", "mouse")}  # fmt: skip


def identity_of(found: JSON | None, room: str) -> JSON | None:
    """The identity in a record taken from the store, None when it does not fit ``room``."""
    if found is None or found.get("room") != room:
        return None
    member, color, name = found.get("id"), found.get("color"), found.get("name")
    if not (isinstance(member, str) and color in PALETTE and isinstance(name, str)):
        return None
    return found


async def choose_color(hub: Hub, room: str, member: str, keep: str | None = None) -> str:
    """The least-used colour of ``room`` among everyone present on every node (``keep``:
    the colour of a resumed identity, claimed as it is). Atomic over the nodes when the
    backplane shares a store; else chosen from the room's presence, which then holds
    everyone (one node, or the link is down and this node serves its own users)."""
    kept = PALETTE.index(keep) if keep in PALETTE else None
    slot = await hub.backplane.claim_slot(room, member, len(PALETTE), kept)
    if slot is None:
        slot = kept
        if slot is None:
            taken = [r.state.get("color") for r in hub.presence(room) if r.member != member]
            slot = least_used((PALETTE.index(c) for c in taken if c in PALETTE), len(PALETTE))
            # Claimed as kept: once the link to the other nodes is back (or now, if it is).
            await hub.backplane.claim_slot(room, member, len(PALETTE), slot)
    return PALETTE[slot % len(PALETTE)]
