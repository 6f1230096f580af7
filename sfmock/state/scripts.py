"""The Lua scripts of the Redis store: each runs atomically on the server."""

from __future__ import annotations

from sfmock.state.admit_script import ADMIT

__all__ = ["ADMIT", "CLOCK", "DROP_SESSION", "HIT", "PUSH", "REPLACE", "RETIRE", "USE_SESSION"]

PUSH = r"""
-- Number one journal entry, append it and trim to the caps, oldest (lowest id) first.
-- KEYS[1]: sorted set of entries (score: id; member: "ID SIZE PAYLOAD")
-- KEYS[2]: meta hash (bytes, dropped)
-- KEYS[3]: the session's id counter, never reset with the journal
-- ARGV: size, payload, max entries, max bytes, ttl (ms; 0: kept for ever: the default session)
-- Returns the entry's id. A named session's ids begin at the server's time in microseconds:
-- one dropped (or expired) and used again never numbers an entry as before, so no process
-- takes a new entry for one it saw.
if ARGV[5] ~= '0' and redis.call('EXISTS', KEYS[3]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[3], string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2])))
end
local id = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], id, string.format('%.0f', id) .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
local bytes = redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
local size, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local freed, dropped = 0, 0
while count > size or (bytes - freed > max_bytes and count > 1) do
  local gone = redis.call('ZPOPMIN', KEYS[1])
  freed = freed + tonumber(string.match(gone[1], '^%d+ (%d+) '))
  count = count - 1
  dropped = dropped + 1
end
if freed > 0 then -- never -0: Redis refuses '-0' as an integer
  redis.call('HINCRBY', KEYS[2], 'bytes', -freed)
end
if dropped > 0 then
  redis.call('HINCRBY', KEYS[2], 'dropped', dropped)
end
if ARGV[5] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
return id
"""

HIT = r"""
-- Count a match of one fault rule; say whether it fires.
-- KEYS[1]: the scenario hash (version, data); KEYS[2]: the counters hash (of that version)
-- ARGV: version, rule index, nth ("" or "3,5"), times (-1: no cap), chance (1 or 0),
-- ttl (ms; 0: kept for ever)
-- Returns {n, fires}; a stale version counts nothing.
if tonumber(redis.call('HGET', KEYS[1], 'version') or '0') ~= tonumber(ARGV[1]) then
  return {0, 0}
end
local n = redis.call('HINCRBY', KEYS[2], 'm' .. ARGV[2], 1)
if ARGV[6] ~= '0' then
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if ARGV[3] ~= '' then
  local listed = false
  for value in string.gmatch(ARGV[3], '%d+') do
    if tonumber(value) == n then
      listed = true
    end
  end
  if not listed then
    return {n, 0}
  end
end
if tonumber(ARGV[4]) >= 0 and tonumber(redis.call('HGET', KEYS[2], 'f' .. ARGV[2]) or '0') >= tonumber(ARGV[4]) then
  return {n, 0}
end
if ARGV[5] ~= '1' then
  return {n, 0}
end
redis.call('HINCRBY', KEYS[2], 'f' .. ARGV[2], 1)
return {n, 1}
"""

REPLACE = r"""
-- Install a scenario: a new version, its data, counters from zero.
-- KEYS[1]: the scenario hash; KEYS[2]: the counters hash
-- ARGV[1]: the data; ARGV[2]: ttl (ms; 0: kept for ever); ARGV[3]: the version (from a
-- counter of every session, never reset: a process never sees a version number twice)
redis.call('DEL', KEYS[2])
local version = ARGV[3]
redis.call('HSET', KEYS[1], 'version', version, 'data', ARGV[1])
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return version
"""

CLOCK = r"""
-- Move the shared clock. KEYS[1]: the clock hash (offset, stopped, start).
-- ARGV: verb (advance, set, freeze, thaw, reset), value, the caller's wall time.
local verb, value, wall = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
local stopped = redis.call('HGET', KEYS[1], 'stopped')
local function fmt(x)
  return string.format('%.17g', x)
end
if verb == 'advance' then
  redis.call('HSET', KEYS[1], 'offset', fmt(offset + value))
  if stopped then
    redis.call('HSET', KEYS[1], 'stopped', fmt(tonumber(stopped) + value))
  end
elseif verb == 'set' then
  redis.call('HSET', KEYS[1], 'offset', fmt(value - wall))
  if stopped then
    redis.call('HSET', KEYS[1], 'stopped', fmt(value))
  end
elseif verb == 'freeze' then
  if not stopped then
    redis.call('HSET', KEYS[1], 'stopped', fmt(wall + offset))
  end
elseif verb == 'thaw' then
  if stopped then
    redis.call('HSET', KEYS[1], 'offset', fmt(tonumber(stopped) - wall))
    redis.call('HDEL', KEYS[1], 'stopped')
  end
elseif verb == 'reset' then
  local start = redis.call('HGET', KEYS[1], 'start')
  redis.call('HSET', KEYS[1], 'offset', '0')
  if start then
    redis.call('HSET', KEYS[1], 'stopped', start)
  else
    redis.call('HDEL', KEYS[1], 'stopped')
  end
end
return redis.call('HMGET', KEYS[1], 'offset', 'stopped')
"""

RETIRE = r"""
-- Retire a model in the shared epoch; an earlier retirement stands.
-- KEYS[1]: the epoch hash (start; retired: JSON {model: time as a decimal string}).
-- ARGV: the model, the time it is retired from.
local held = redis.call('HGET', KEYS[1], 'retired')
local retired = {}
if held then
  retired = cjson.decode(held)
end
local old = retired[ARGV[1]]
if old == nil or tonumber(ARGV[2]) < tonumber(old) then
  retired[ARGV[1]] = ARGV[2]
  redis.call('HSET', KEYS[1], 'retired', cjson.encode(retired))
end
return 1
"""

USE_SESSION = r"""
-- Note a use of a named session; keep the most recently used, return the others' names.
-- KEYS[1]: sorted set of session names (score: the order of their last use)
-- KEYS[2]: the counter of uses
-- ARGV: the name, how many sessions to keep.
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], n, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
local gone = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do
    gone[#gone + 1] = popped[i]
  end
end
return gone
"""

DROP_SESSION = r"""
-- Drop keys of a named session, unless the registry holds it (it was used again).
-- KEYS[1]: the sorted set of session names; KEYS[2..]: the session's keys. ARGV: the name.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
return redis.call('UNLINK', unpack(KEYS, 2))
"""
