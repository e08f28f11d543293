"""The Lua scripts of the Redis store, one per operation, each run atomically by the server.

Every script starts with the shared prelude and reads ARGV[1..3] as the caller's clock, the
store's ttl and its byte cap; the rest of ARGV is the operation's own. Layout of the keys:
see `headroom.store.redis`. Times are stored as the caller sent them (Lua would round them
when formatting a number), and use order comes from the `seq` counter, so eviction follows
the order in which all clients used the entries, whatever their clocks.
"""

from __future__ import annotations

PREFIX = "headroom:"
"""What every Redis key of the store begins with."""

_PRELUDE = """
local NOW, TTL, CAP = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local HELD, NOTES, DEAD, USAGE = P .. 'held', P .. 'notes', P .. 'dead', P .. 'usage'

local function use(set, member, hash)
  redis.call('HSET', hash, 't', ARGV[1])
  redis.call('ZADD', set, redis.call('INCR', P .. 'seq'), member)
end

local function bury(key, when)
  local entry = P .. 'o:' .. key
  local sizes = redis.call('HMGET', entry, 'n', 's')
  redis.call('HINCRBY', USAGE, 'original', -sizes[1])
  redis.call('HINCRBY', USAGE, 'stored', -sizes[2])
  redis.call('HDEL', entry, 'b')
  redis.call('HSET', entry, 'e', when)
  redis.call('ZREM', HELD, key)
  redis.call('ZADD', DEAD, when, key)
end

local function forget(name)
  local note = P .. 'n:' .. name
  redis.call('HINCRBY', USAGE, 'notes', -redis.call('HGET', note, 's'))
  redis.call('DEL', note)
  redis.call('ZREM', NOTES, name)
end

local function stale(set, kind)
  local head = redis.call('ZRANGE', set, 0, 0)[1]
  if not head then return nil end
  local used = tonumber(redis.call('HGET', P .. kind .. head, 't'))
  if used > NOW - TTL then return nil end
  return head, used
end

local function sweep()
  local count = 0
  for _, kind in ipairs({'o:', 'n:'}) do
    while true do
      local member, used = stale(kind == 'o:' and HELD or NOTES, kind)
      if not member then break end
      if kind == 'o:' then bury(member, used + TTL) else forget(member) end
      count = count + 1
    end
  end
  return count
end

local function oldest(set, keep)
  local pair = redis.call('ZRANGE', set, 0, 1, 'WITHSCORES')
  if pair[1] == keep then return pair[3], tonumber(pair[4]) end
  return pair[1], tonumber(pair[2])
end

-- Drops the least recently used originals and notes until the cap holds; `keep_key` or
-- `keep_name`, just stored, stays even if it alone exceeds the cap.
local function evict(keep_key, keep_name)
  local usage = redis.call('HMGET', USAGE, 'stored', 'notes')
  local excess = (tonumber(usage[1]) or 0) + (tonumber(usage[2]) or 0) - CAP
  while excess > 0 do
    local key, key_use = oldest(HELD, keep_key)
    local name, name_use = oldest(NOTES, keep_name)
    if not key and not name then return end
    if key and (not name or key_use < name_use) then
      excess = excess - redis.call('HGET', P .. 'o:' .. key, 's')
      bury(key, ARGV[1])
    else
      excess = excess - redis.call('HGET', P .. 'n:' .. name, 's')
      forget(name)
    end
  end
end
"""

# ARGV: now, ttl, cap, body, original bytes, then the keys derive_key would try, in order
# (the last is the whole digest).
_PUT = """
sweep()
local digest = ARGV[#ARGV]
local key = digest
for i = 6, #ARGV - 1 do
  local found = redis.call('HGET', P .. 'o:' .. ARGV[i], 'd')
  if not found or found == digest then key = ARGV[i] break end
end
local entry = P .. 'o:' .. key
if not redis.call('ZSCORE', HELD, key) then
  redis.call('HSET', entry, 'd', digest, 'b', ARGV[4], 'n', ARGV[5], 's', #ARGV[4])
  redis.call('HDEL', entry, 'e')
  redis.call('ZREM', DEAD, key)
  redis.call('HINCRBY', USAGE, 'original', ARGV[5])
  redis.call('HINCRBY', USAGE, 'stored', #ARGV[4])
end
use(HELD, key, entry)
evict(key, nil)
return key
"""

# ARGV: now, ttl, cap, key. Answers the body, 0 when expired, nil when unknown.
_GET = """
local entry = P .. 'o:' .. ARGV[4]
local found = redis.call('HMGET', entry, 'd', 'b', 't')
if not found[1] then return false end
if not found[2] then return 0 end
if tonumber(found[3]) <= NOW - TTL then sweep() return 0 end
use(HELD, ARGV[4], entry)
return found[2]
"""

# ARGV: now, ttl, cap, keys...
_TOUCH = """
for i = 4, #ARGV do
  local entry = P .. 'o:' .. ARGV[i]
  if redis.call('ZSCORE', HELD, ARGV[i]) and tonumber(redis.call('HGET', entry, 't')) > NOW - TTL then
    use(HELD, ARGV[i], entry)
  end
end
"""

# ARGV: now, ttl, cap, name, packed value
_REMEMBER = """
sweep()
local note = P .. 'n:' .. ARGV[4]
local before = tonumber(redis.call('HGET', note, 's')) or 0
redis.call('HSET', note, 'v', ARGV[5], 's', #ARGV[5])
redis.call('HINCRBY', USAGE, 'notes', #ARGV[5] - before)
use(NOTES, ARGV[4], note)
evict(nil, ARGV[4])
"""

# ARGV: now, ttl, cap, name. Answers the packed value, nil when there is none.
_RECALL = """
local note = P .. 'n:' .. ARGV[4]
local found = redis.call('HMGET', note, 'v', 't')
if not found[1] or tonumber(found[2]) <= NOW - TTL then return false end
use(NOTES, ARGV[4], note)
return found[1]
"""

_STATS = """
sweep()
local usage = redis.call('HMGET', USAGE, 'original', 'stored')
local head = redis.call('ZRANGE', HELD, 0, 0)[1]
local oldest = head and redis.call('HGET', P .. 'o:' .. head, 't') or false
return {redis.call('ZCARD', HELD), redis.call('ZCARD', DEAD), usage[1] or 0, usage[2] or 0, oldest}
"""

# ARGV: now, ttl, cap, TOMBSTONE_TTL, batch size. Answers how many entries it dropped and
# how many of them were old tombstones (a full batch means there may be more).
_PURGE = """
local removed = sweep()
local cutoff = string.format('(%.17g', NOW - tonumber(ARGV[4]))
local old = redis.call('ZRANGEBYSCORE', DEAD, '-inf', cutoff, 'LIMIT', 0, ARGV[5])
for _, key in ipairs(old) do
  redis.call('DEL', P .. 'o:' .. key)
  redis.call('ZREM', DEAD, key)
end
return {removed + #old, #old}
"""

# ARGV: now, ttl, cap, batch size. Answers how many originals and notes it dropped; held
# originals become tombstones first, so a run that finds any drops some.
_PURGE_ALL = """
for _, key in ipairs(redis.call('ZRANGE', HELD, 0, ARGV[4] - 1)) do bury(key, ARGV[1]) end
local dead = redis.call('ZRANGE', DEAD, 0, ARGV[4] - 1)
for _, key in ipairs(dead) do
  redis.call('DEL', P .. 'o:' .. key)
  redis.call('ZREM', DEAD, key)
end
local notes = redis.call('ZRANGE', NOTES, 0, ARGV[4] - 1)
for _, name in ipairs(notes) do forget(name) end
return #dead + #notes
"""

SCRIPTS = {
    name: f"local P = '{PREFIX}'{_PRELUDE}{body}"
    for name, body in (
        ("put", _PUT),
        ("get", _GET),
        ("touch", _TOUCH),
        ("remember", _REMEMBER),
        ("recall", _RECALL),
        ("stats", _STATS),
        ("purge", _PURGE),
        ("purge_all", _PURGE_ALL),
    )
}
"""Each operation's whole Lua source, by name."""
