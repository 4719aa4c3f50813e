"""The Lua scripts of the records nodes share (`shared.RedisTtlStore`): ``<p>:kept:<key>``,
a hash of ``record`` (JSON), ``scope``, and ``node`` and ``inst`` while a process holds it, or
only ``ended`` once ended (`keys` lists every key). Each runs atomically in Redis, so of two
nodes acting on one record at once, one sees what the other did.
"""

from __future__ import annotations

#: Take the shared record KEYS[1] unless a live process holds it; ARGV[1] is the prefix of
#: node keys, ARGV[2] the scope the record must have (else it stays as it is). Returns
#: {'record', json}, {'held', node, ms left of that node's key}, or nil.
TAKE_RECORD = """
local v = redis.call('HMGET', KEYS[1], 'record', 'node', 'inst', 'scope')
if not v[1] or (v[4] or '') ~= ARGV[2] then return nil end
if v[2] then
  local node_key = ARGV[1] .. v[2]
  if redis.call('GET', node_key) == v[3] then
    return {'held', v[2], redis.call('PTTL', node_key)}
  end
end
redis.call('DEL', KEYS[1])
return {'record', v[1]}
"""

#: Make this process (ARGV: node, inst) the holder of the record KEYS[1], even if another
#: live process holds it, and return it (nil: none, of another scope than ARGV[3], or this
#: process holds it already).
SEIZE_RECORD = """
local v = redis.call('HMGET', KEYS[1], 'record', 'node', 'inst', 'scope')
if not v[1] or (v[4] or '') ~= ARGV[3] then return nil end
if v[2] == ARGV[1] and v[3] == ARGV[2] then return nil end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'inst', ARGV[2])
return v[1]
"""

#: Write again the records this process holds (KEYS), unless one was released or taken over
#: since (it exists, and this process does not hold it). ARGV: node, inst, then the record's
#: JSON, its TTL in ms and its scope for each key.
RENEW_HELD = """
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'node', 'inst')
  local exists = redis.call('EXISTS', KEYS[i]) == 1
  if not exists or (v[1] == ARGV[1] and v[2] == ARGV[2]) then
    redis.call('HSET', KEYS[i], 'record', ARGV[i * 3], 'node', ARGV[1], 'inst', ARGV[2],
               'scope', ARGV[i * 3 + 2])
    redis.call('PEXPIRE', KEYS[i], ARGV[i * 3 + 1])
  end
end
return #KEYS
"""

#: Write each record KEYS[i] put by this process (ARGV: node, inst) again where it is missing
#: (a restarted Redis lost it) or this process still holds it (the put failed: the link was
#: down); ARGV then holds the record's JSON, its scope and its TTL in ms for each key.
RESTORE_RECORDS = """
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'node', 'inst')
  if redis.call('EXISTS', KEYS[i]) == 0 or (v[1] == ARGV[1] and v[2] == ARGV[2]) then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], 'record', ARGV[i * 3], 'scope', ARGV[i * 3 + 1])
    redis.call('PEXPIRE', KEYS[i], ARGV[i * 3 + 2])
  end
end
return #KEYS
"""

#: Remove the shared record KEYS[1] unless another process holds it (ARGV: this node and
#: instance): a member that resumed elsewhere keeps the record its new node holds. An ended
#: record's mark stays.
DISCARD_RECORD = """
local v = redis.call('HMGET', KEYS[1], 'node', 'inst', 'ended')
if v[3] or (v[1] and (v[1] ~= ARGV[1] or v[2] ~= ARGV[2])) then return 0 end
return redis.call('DEL', KEYS[1])
"""

#: End the record KEYS[1] for good and return it: it is replaced by a mark (``ended``) for as
#: long as it would have lived, which no later write replaces (`WRITE_RECORD`; renewals and
#: restores write only where nothing is): a process that could not hear of the end (its link
#: was down) cannot write it back.
END_RECORD = """
local record = redis.call('HGET', KEYS[1], 'record')
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
if ttl > 0 then
  redis.call('HSET', KEYS[1], 'ended', '1')
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return record
"""

#: Write the record KEYS[1] (ARGV: its TTL in ms, then field, value, ...), unless it was
#: ended. Returns 1 when written.
WRITE_RECORD = """
if redis.call('HEXISTS', KEYS[1], 'ended') == 1 then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
