"""What the Redis backplane stores where, and in what form.

Keys and channels (``<p>`` is the prefix, ``cursorshare`` by default):

- ``<p>:room:<room>``: pub/sub channel of a room. A message is one node's coalesced batch of one
  tick, ``{"node": id, "inst": token, "events": [Event.to_wire(), ...]}`` (orjson), or a
  request to the node holding a member to end it, ``{"farewell": member id}`` (`FAREWELL`),
  or to let it go silently (another node took it over), ``{"handover": member id, "node": id,
  "inst": token}`` (the sender, which hears its own on the channel too).
- ``<p>:presence:<room>``: hash ``member id -> {"node": id, "inst": token, "state": {...},
  "grace"?: seconds}``, the members present in the room on any node, with the process that
  wrote each entry; ``grace``: how long the member stays after that process is gone (it may
  resume on another node meanwhile).
- ``<p>:orphans:<room>``: hash ``member id -> "<until, ms of Redis time>:<inst>"``, when each
  member whose process is gone leaves (`STAMP_ORPHANS`: the first node to find it stamps it).
- ``<p>:nodes``: channel where a node says it (re)wrote its presence.
- ``<p>:node:<id>``: the node's liveness key, holding its instance token.
- ``<p>:slots:<room>``: hash ``member id -> "<slot>:<claimed at, ms>"``, the slots claimed in
  the room (`CLAIM_SLOT`); a claim counts while its member is in the presence hash, or for
  the hold after it was made (its entry is written a tick later).
- ``<p>:kept:<key>``: a record of the shared `TtlStore`, with its TTL: hash ``record`` (JSON),
  ``scope`` (a take naming another gets nothing) and, while a process holds it, ``node`` and
  ``inst``; once ended, only ``ended``, which no write replaces (the scripts: `records`).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from redis.asyncio.client import Pipeline

from ...hub import JSON, Event

#: HDEL each field of the hash KEYS[1] whose value still contains its needle: ARGV holds
#: field, needle, field, needle... A node never removes an entry that another process re-wrote
#: (the member resumed there) between the read that found it stale and the delete.
DELETE_IF_CONTAINS = """
local removed = 0
for i = 1, #ARGV, 2 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and string.find(value, ARGV[i + 1], 1, true) then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
"""


#: HDEL each field of the hash KEYS[1] whose value still contains its needle and whose writer
#: is not alive: ARGV holds field, needle, instance token, ... and KEYS[1 + i] the liveness key
#: of the i-th field's node. A node that finds itself taken for dead re-writes its liveness key
#: before its entries (`liveness.NodeLiveness.beat`), so an entry it re-wrote between a
#: sweeper's reads and this delete stays: the sweeper's own check of the tokens is a read
#: ago, this one is atomic with the delete.
DELETE_IF_DEAD = """
local removed = 0
for i = 1, #ARGV, 3 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and string.find(value, ARGV[i + 1], 1, true)
      and redis.call('GET', KEYS[2 + (i - 1) / 3]) ~= ARGV[i + 2] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
"""


#: Claim the least-used slot of a room for a member, atomically over every node. KEYS[1] is
#: the room's slots hash, KEYS[2] its presence hash; ARGV: member, number of slots, the slot to
#: keep ('' to choose), hold in ms, the hash's TTL in seconds. Claims of members neither
#: present nor within the hold are removed. Returns the slot.
CLAIM_SLOT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local count, hold = tonumber(ARGV[2]), tonumber(ARGV[4])
local used = {}
for i = 0, count - 1 do used[i] = 0 end
local claims = redis.call('HGETALL', KEYS[1])
for i = 1, #claims, 2 do
  local member = claims[i]
  local slot, since = string.match(claims[i + 1], '^(%d+):(%d+)$')
  slot, since = tonumber(slot), tonumber(since)
  if member ~= ARGV[1] then
    if slot and (since + hold > now_ms or redis.call('HEXISTS', KEYS[2], member) == 1) then
      if used[slot] then used[slot] = used[slot] + 1 end
    else
      redis.call('HDEL', KEYS[1], member)
    end
  end
end
local chosen = tonumber(ARGV[3])
if not chosen then
  chosen = 0
  for i = 1, count - 1 do
    if used[i] < used[chosen] then chosen = i end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], chosen .. ':' .. now_ms)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return chosen
"""


#: Stamp when members of a gone process leave, atomically over every node. KEYS[1] is the
#: room's orphans hash, KEYS[2] its presence hash; ARGV: the least TTL in seconds both hashes
#: keep (the longest grace, at least), then member, inst, grace in ms for each. A member keeps
#: the stamp of the same inst (the first node to find it gone made it), else gets now + grace.
#: Returns Redis's now in ms, then each member's deadline.
STAMP_ORPHANS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for i = 2, #ARGV, 3 do
  local deadline = nil
  local stamp = redis.call('HGET', KEYS[1], ARGV[i])
  if stamp then
    local at, by = string.match(stamp, '^(%d+):(.*)$')
    if by == ARGV[i + 1] then deadline = tonumber(at) end
  end
  if not deadline then
    deadline = now + tonumber(ARGV[i + 2])
    redis.call('HSET', KEYS[1], ARGV[i], string.format('%d', deadline) .. ':' .. ARGV[i + 1])
  end
  out[#out + 1] = deadline
end
local ttl = tonumber(ARGV[1])
for k = 1, 2 do
  if redis.call('TTL', KEYS[k]) < ttl then redis.call('EXPIRE', KEYS[k], ttl) end
end
return out
"""

#: Write this process's entries of members whose connection is lost in the room's presence
#: hash KEYS[1], but not over one that another live process wrote: the member resumed there,
#: and its hand-over message may have been lost (this node's link was down). ARGV[1] is the
#: prefix of node keys, ARGV[2] this instance, then member, entry, ... Returns the members
#: left to that process.
REWRITE_OWN = """
local theirs = {}
for i = 3, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local other = false
  if current then
    local ok, entry = pcall(cjson.decode, current)
    if ok and type(entry) == 'table' and type(entry.node) == 'string'
        and type(entry.inst) == 'string' and entry.inst ~= ARGV[2] then
      other = redis.call('GET', ARGV[1] .. entry.node) == entry.inst
    end
  end
  if other then
    theirs[#theirs + 1] = ARGV[i]
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return theirs
"""


def stamp_args(ttl: int, orphans: list[tuple[str, str, float]]) -> list[str | int]:
    """STAMP_ORPHANS's ARGV for ``(member, inst, grace in seconds)``: the hashes keep at least
    ``ttl`` seconds, and at least the longest grace."""
    longest = max((grace for _, _, grace in orphans), default=0.0)
    args: list[str | int] = [max(ttl, int(longest) + 1)]
    for member, inst, grace in orphans:
        args += [member, inst, int(grace * 1000)]
    return args


def text(value: object) -> str | None:
    """A value read from Redis as str (None when it is neither str nor bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


def script_args(stale: dict[str, bytes | str]) -> list[str | bytes]:
    """DELETE_IF_CONTAINS's ARGV for ``member -> needle``."""
    return [item for member, needle in stale.items() for item in (member, needle)]


def delete_if_dead(
    pipe: Pipeline, layout: KeyLayout, room: str, writers: dict[str, tuple[str, str]]
) -> None:
    """Queue DELETE_IF_DEAD on ``pipe`` for the entries of ``member -> (node, inst)``, gone
    processes, in the room's presence hash."""
    keys = [layout.presence(room), *(layout.node(node) for node, _ in writers.values())]
    args: list[str | bytes] = []
    for member, (_, inst) in writers.items():
        args += [member, needle(inst), inst]
    pipe.eval(DELETE_IF_DEAD, len(keys), *keys, *args)


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "cursorshare"

    def channel(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def room_of(self, channel: bytes) -> str | None:
        """The room whose channel this is (None for any other channel)."""
        name = channel.decode(errors="replace")
        head = f"{self.prefix}:room:"
        return name[len(head) :] if name.startswith(head) else None

    def presence(self, room: str) -> str:
        return f"{self.prefix}:presence:{room}"

    @property
    def presence_pattern(self) -> str:
        """Matches the presence hash of every room (for SCAN)."""
        return self.presence("*")

    def room_of_presence(self, key: bytes | str) -> str:
        return (text(key) or "")[len(self.presence("")) :]

    def slots(self, room: str) -> str:
        return f"{self.prefix}:slots:{room}"

    def orphans(self, room: str) -> str:
        return f"{self.prefix}:orphans:{room}"

    def kept(self, key: str) -> str:
        return f"{self.prefix}:kept:{key}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    @property
    def node_prefix(self) -> str:
        return self.node("")

    @property
    def nodes_channel(self) -> str:
        """Where a node that (re)wrote its presence says so, for the others to compare at once."""
        return f"{self.prefix}:nodes"


@dataclass(frozen=True, slots=True)
class Entry:
    """A member's presence entry: its state, the process that wrote it, and how long the member
    stays after that process is gone (0: it leaves with it)."""

    node: str
    inst: str
    state: JSON
    grace: float = 0.0

    def encode(self) -> bytes:
        entry: JSON = {"node": self.node, "inst": self.inst, "state": self.state}
        if self.grace > 0:
            entry["grace"] = self.grace
        return orjson.dumps(entry)

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry | None:
        """None when ``raw`` is not an entry (malformed, or written by something else)."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        node, inst, state = value.get("node"), value.get("inst"), value.get("state")
        if not (isinstance(node, str) and isinstance(inst, str) and isinstance(state, dict)):
            return None
        grace = value.get("grace", 0.0)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
            grace = 0.0
        return cls(node, inst, state, float(grace))


def needle(inst: str) -> bytes:
    """What every entry written by the instance ``inst`` contains (for DELETE_IF_CONTAINS)."""
    return b'"inst":' + orjson.dumps(inst)


@dataclass(frozen=True, slots=True)
class Batch:
    """One node's batch of one tick, as sent on a room's channel."""

    node: str
    inst: str
    events: list[Event]

    def encode(self) -> bytes:
        wire = [event.to_wire() for event in self.events]
        return orjson.dumps({"node": self.node, "inst": self.inst, "events": wire})

    @classmethod
    def decode(cls, data: bytes) -> Batch:
        """Raises ValueError (or KeyError, TypeError) when ``data`` is not a batch."""
        payload = orjson.loads(data)
        events = [Event.from_wire(item) for item in payload["events"]]
        return cls(str(payload["node"]), str(payload["inst"]), events)


#: How a farewell message on a room's channel begins (orjson keeps the key order), so that a
#: node tells it from a batch without decoding either twice.
FAREWELL = b'{"farewell":'


def farewell(member: str) -> bytes:
    return orjson.dumps({"farewell": member})


#: How a hand-over message begins (see `FAREWELL`).
HANDOVER = b'{"handover":'


def handover(member: str, node: str, inst: str) -> bytes:
    """A hand-over names its sender: the node hears its own on the room's channel too."""
    return orjson.dumps({"handover": member, "node": node, "inst": inst})


def request_of(data: bytes, field: str) -> tuple[str, tuple[str, str] | None] | None:
    """The member a farewell (``field`` "farewell") or hand-over ("handover") message names,
    and its sender (node, instance) when it says; None when ``data`` is not one."""
    try:
        payload = orjson.loads(data)
        member, node, inst = payload.get(field), payload.get("node"), payload.get("inst")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(member, str):
        return None
    return member, (node, inst) if isinstance(node, str) and isinstance(inst, str) else None
