"""The Lua scripts of the Redis store: each runs atomically on the server."""

from __future__ import annotations

from sfmock.state.admit_script import ADMIT

__all__ = [
    "ADMIT",
    "ADMIT_CHECKED",
    "ADMIT_PUSH",
    "ADMIT_PUSH_CHECKED",
    "CLEAR",
    "CLOCK",
    "DROP_SESSION",
    "HIT",
    "PUSH",
    "REPLACE",
    "RETIRE",
    "REWRITE",
    "SHED",
    "USE_SESSION",
    "checked",
]

# The journal budget of every session together (one Redis server; a cluster keeps each
# session's own bound): a hash of each session's body bytes ('s:NAME', the default
# session's 's:') and their '#total', beside the registry of sessions (one slot).
_FORGET = r"""
local function forget(budget, field)
  local held = tonumber(redis.call('HGET', budget, field) or '0')
  redis.call('HDEL', budget, field)
  if held ~= 0 then
    redis.call('HINCRBY', budget, '#total', -held)
  end
  return held
end
"""

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
-- KEYS[4] (one server only): the budget hash; ARGV[6]: the session's field; ARGV[7]: the budget
local over = 0
if KEYS[4] then
  local delta = tonumber(ARGV[1]) - freed
  redis.call('HINCRBY', KEYS[4], ARGV[6], delta)
  if redis.call('HINCRBY', KEYS[4], '#total', delta) > tonumber(ARGV[7]) then
    over = 1
  end
end
return {id, over}
"""

# Admission and, when it admits, the journal entry of its answer, written ahead: one call
# a generation on one server (a cluster keeps the account's keys and the journal's in
# different slots, so there the entry is appended on its own). Each script runs as a
# function of its own KEYS and ARGV, as it would alone.
ADMIT_PUSH = (
    "local function admit(KEYS, ARGV)\n"
    + ADMIT
    + "\nend\nlocal function push(KEYS, ARGV)\n"
    + PUSH
    + "\nend\n"
    + r"""
-- KEYS[1], KEYS[2]: admission's; KEYS[3..]: the journal append's
-- ARGV[1]: how many of the rest are admission's (N); ARGV[2..N+1]: admission's; then the append's
-- Returns {entry id (0: not written), over the sessions' budget (0 or 1), admission's reply...}.
-- An append that fails (its keys broken) leaves the admission standing: the entry is then
-- appended on its own, as if not written ahead (and that failure reported there).
local n = tonumber(ARGV[1])
local result = admit({KEYS[1], KEYS[2]}, {unpack(ARGV, 2, n + 1)})
local id, over = 0, 0
if result[1] == 1 then
  local ok, pushed = pcall(push, {unpack(KEYS, 3)}, {unpack(ARGV, n + 2)})
  if ok then
    id, over = pushed[1], pushed[2]
  end
end
return {id, over, unpack(result)}
"""
)


def checked(script: str) -> str:
    """``script``, run only while the hashes a request read ahead hold what it read
    (:mod:`sfmock.state.recheck`). KEYS[1..m]: those hashes; ARGV[1]: m; ARGV[2]: what they
    held, every field's value in order, '\\0' between, '\\1' for none; ARGV[3..m+2]: each
    hash's fields, ',' between; then ``script``'s own KEYS and ARGV. Returns {-1}, having
    done nothing, where they changed."""
    return (
        "local function checked(KEYS, ARGV)\n"
        + script
        + r"""
end
local m = tonumber(ARGV[1])
local seen = {}
for i = 1, m do
  local fields = {}
  for name in string.gmatch(ARGV[2 + i], '[^,]+') do
    fields[#fields + 1] = name
  end
  local values = redis.call('HMGET', KEYS[i], unpack(fields))
  for j = 1, #fields do
    seen[#seen + 1] = values[j] or '\1'
  end
end
if table.concat(seen, '\0') ~= ARGV[2] then
  return {-1}
end
return checked({unpack(KEYS, m + 1)}, {unpack(ARGV, m + 3)})
"""
    )


ADMIT_CHECKED = checked(ADMIT)
ADMIT_PUSH_CHECKED = checked(ADMIT_PUSH)


REWRITE = r"""
-- Write one journal entry again under its id: the answer written ahead with the admission
-- went out otherwise (the request's body, so its size, is the same).
-- KEYS[1]: the sorted set of entries; ARGV: id, size, payload
-- Returns 1, or 0 when the entry was pushed out meanwhile.
local old = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #old == 0 then
  return 0
end
redis.call('ZREM', KEYS[1], old[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return 1
"""

SHED = (
    _FORGET
    + r"""
-- The sessions' journals together over the budget: push out the least recently used named
-- sessions but the one adding (those holding journal bytes), then trim that one's oldest.
-- KEYS[1]: the registry of sessions; KEYS[2]: the budget hash; KEYS[3], KEYS[4]: the adding
-- session's entries and meta. ARGV: its field ('s:NAME'), the budget.
-- Returns the names pushed out (their keys are swept by the caller).
local limit = tonumber(ARGV[2])
local total = tonumber(redis.call('HGET', KEYS[2], '#total') or '0')
local gone = {}
if total > limit then
  for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if total <= limit then
      break
    end
    local field = 's:' .. name
    if field ~= ARGV[1] and redis.call('HEXISTS', KEYS[2], field) == 1 then
      redis.call('ZREM', KEYS[1], name)
      total = total - forget(KEYS[2], field)
      gone[#gone + 1] = name
    end
  end
end
local freed, dropped = 0, 0
while total - freed > limit and redis.call('ZCARD', KEYS[3]) > 1 do
  local popped = redis.call('ZPOPMIN', KEYS[3])
  freed = freed + tonumber(string.match(popped[1], '^%d+ (%d+) '))
  dropped = dropped + 1
end
if freed > 0 then
  redis.call('HINCRBY', KEYS[4], 'bytes', -freed)
  redis.call('HINCRBY', KEYS[4], 'dropped', dropped)
  redis.call('HINCRBY', KEYS[2], ARGV[1], -freed)
  redis.call('HINCRBY', KEYS[2], '#total', -freed)
end
return gone
"""
)

CLEAR = (
    _FORGET
    + r"""
-- Empty a journal. KEYS[1]: entries; KEYS[2]: meta; KEYS[3] (one server only): the budget
-- hash. ARGV[1]: the session's field in it.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'bytes', 0, 'dropped', 0)
if KEYS[3] then
  forget(KEYS[3], ARGV[1])
end
return 1
"""
)

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

USE_SESSION = (
    _FORGET
    + r"""
-- Note a use of a named session; keep the most recently used, return the others' names.
-- KEYS[1]: sorted set of session names (score: the order of their last use)
-- KEYS[2]: the counter of uses; KEYS[3]: the journal budget hash (the same slot)
-- ARGV: the name, how many sessions to keep.
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], n, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
local gone = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do
    gone[#gone + 1] = popped[i]
    forget(KEYS[3], 's:' .. popped[i])
  end
end
return gone
"""
)

DROP_SESSION = (
    _FORGET
    + r"""
-- Drop keys of a named session, unless the registry holds it (it was used again).
-- KEYS[1]: the sorted set of session names; KEYS[2]: the journal budget hash; KEYS[3..]:
-- the session's keys. ARGV: the name.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
forget(KEYS[2], 's:' .. ARGV[1])
return redis.call('UNLINK', unpack(KEYS, 3))
"""
)
