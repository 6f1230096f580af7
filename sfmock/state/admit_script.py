"""The admission script of the Redis store: an account's sliding windows and balance, one
atomic step on the server (the other scripts: :mod:`sfmock.state.scripts`).

Each account is one hash and one sorted-set log of its admitted requests, whatever its
windows; it keeps the rule of :mod:`sfmock.state.windows` (at most L in any S seconds,
following the clock both ways), step for step. One thing one process never meets: processes
reading one clock reach Redis out of the order of their times; each call names the
timeline it read its time on (:func:`sfmock.state.redis_time.timeline`), so an earlier
time on the timeline the account last saw is taken for that race, not the clock going back.
"""

from __future__ import annotations

__all__ = ["ADMIT"]

ADMIT = r"""
-- Admit one request atomically: every sliding window, then the balance, then record.
-- One account is one hash and one sorted set, however many windows it has:
-- KEYS[1]: the account's hash: gift, charged (scaled integers); seq (entry numbers);
--   ids (window numbers); per window "i:NAME" its number K; per number K "t:K" its total,
--   "c:K" its cutoff (entries at or before it have left it), "n:K" its newest entry's time;
--   span (the longest window's span, s); tl, tw: the timeline of the last call and the
--   latest time it reached
-- KEYS[2]: the account's log, a sorted set (score: time; member: "SEQ:K=AMOUNT,K=AMOUNT")
-- ARGV[1]: now (a decimal string: kept exact as a score)
-- ARGV[2], ARGV[3]: opening gift and charged balances (scaled integers)
-- ARGV[4]: cost (scaled integer)
-- ARGV[5]: 1 to charge and record, 0 to only read the windows
-- ARGV[6]: milliseconds the account is kept after its last use (0: for ever)
-- ARGV[7]: 1 while the clock is stopped (the log is then kept a week longer)
-- ARGV[8]: the timeline `now` was read on (the clock's fields as the request read them;
--   '': not known, so any earlier time is the clock going back)
-- then per window: name, span (s), limit, amount
-- Returns {verdict, index, retry_after, used_1, last_1, used_2, last_2, ...}:
-- verdict 1 admitted, 2 over the limit of window `index` (retry_after -1: never),
-- 3 balance too low, 0 only read.
local acct, log = KEYS[1], KEYS[2]
local now_text = ARGV[1]
local now = tonumber(now_text)
local windows = (#ARGV - 8) / 4
local function fmt(x)
  return string.format('%.17g', x)
end
local f, changed = {}, {}
local flat = redis.call('HGETALL', acct)
for j = 1, #flat, 2 do
  f[flat[j]] = flat[j + 1]
end
local function set(field, value)
  f[field], changed[field] = value, true
end
local function num(field, default)
  local v = f[field]
  if v == nil then
    return default
  end
  return tonumber(v)
end
if redis.call('EXISTS', log) == 0 then -- the log went (expired): no window holds anything
  for field, _ in pairs(f) do
    local kind = string.sub(field, 1, 2)
    if kind == 't:' or kind == 'c:' or kind == 'n:' then
      set(field, nil)
    end
  end
end
local function amount_in(member, k)
  return tonumber(string.match(member, '[:,]' .. k .. '=([^,]+)') or '0')
end
-- entries leaving the log: each counts no more in the windows still holding it
local function drop(entries)
  for j = 1, #entries, 2 do
    local member, score = entries[j], tonumber(entries[j + 1])
    for k, amount in string.gmatch(member, '[:,](%d+)=([^,]+)') do
      if score > num('c:' .. k, -math.huge) and f['t:' .. k] then
        set('t:' .. k, fmt(num('t:' .. k, 0) - tonumber(amount)))
      end
    end
  end
end
local function newest_of(k)
  local floor = num('c:' .. k, -math.huge)
  local entries = redis.call('ZREVRANGEBYSCORE', log, '+inf', '(' .. fmt(floor), 'WITHSCORES')
  for j = 1, #entries, 2 do
    if amount_in(entries[j], k) ~= 0 then
      return entries[j + 1]
    end
  end
  return nil
end
-- Processes reading one clock compute their times before their calls reach Redis, so
-- calls arrive out of the order of their times by a few ms: on the timeline the account
-- last saw (the clock not moved since), an earlier time is such a race, not the clock
-- going back; it is served at the latest time that timeline reached, as one process
-- serving them in this order would have, and nothing is dropped.
local timeline = ARGV[8]
if timeline == '' then
  if f['tl'] then
    set('tl', nil)
  end
elseif f['tl'] ~= timeline then
  set('tl', timeline)
elseif f['tw'] and now < tonumber(f['tw']) then
  now_text = f['tw']
  now = tonumber(now_text)
end
if f['tw'] ~= now_text then
  set('tw', now_text)
end
-- The clock went back: that timeline is gone. What had left a window stays out of it (its
-- number is taken out of those entries) and what comes now counts in it.
local touched, cut = {}, {}
local later = redis.call('ZRANGEBYSCORE', log, '(' .. now_text, '+inf', 'WITHSCORES')
if #later > 0 then
  drop(later)
  redis.call('ZREMRANGEBYSCORE', log, '(' .. now_text, '+inf')
  for j = 1, #later, 2 do
    for k in string.gmatch(later[j], '[:,](%d+)=') do
      touched[k] = true
    end
  end
end
for field, value in pairs(f) do
  if string.sub(field, 1, 2) == 'c:' and tonumber(value) >= now then
    cut[string.sub(field, 3)] = value
  end
end
for k, cutoff in pairs(cut) do
  local left = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff, 'WITHSCORES')
  for j = 1, #left, 2 do
    local member = left[j]
    if amount_in(member, k) ~= 0 then
      local kept = {}
      for other, amount in string.gmatch(member, '[:,](%d+)=([^,]+)') do
        if other ~= k then
          kept[#kept + 1] = other .. '=' .. amount
        end
      end
      redis.call('ZREM', log, member)
      if #kept > 0 then
        redis.call('ZADD', log, left[j + 1], string.match(member, '^(%d+):') .. ':' .. table.concat(kept, ','))
      end
    end
  end
  set('c:' .. k, nil) -- every entry still holding the window is in it
  touched[k] = true
end
for k, _ in pairs(touched) do
  set('n:' .. k, newest_of(k))
end
local longest = num('span', 0)
if longest > 0 then -- what no window can hold any more leaves the log
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', fmt(now - longest), 'WITHSCORES')
  if #old > 0 then
    drop(old)
    redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt(now - longest))
  end
end
local ids, spans, limits, amounts, used, last = {}, {}, {}, {}, {}, {}
for i = 1, windows do
  local base = 8 + (i - 1) * 4
  spans[i], limits[i], amounts[i] = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local k = f['i:' .. ARGV[base + 1]]
  ids[i], used[i] = k, 0
  if k then
    local cutoff = now - spans[i]
    local before = num('c:' .. k, -math.huge)
    if cutoff > before then
      local low = '-inf'
      if before > -math.huge then
        low = '(' .. fmt(before)
      end
      local gone = redis.call('ZRANGEBYSCORE', log, low, fmt(cutoff))
      local total = num('t:' .. k, 0)
      for j = 1, #gone do
        total = total - amount_in(gone[j], k)
      end
      set('t:' .. k, fmt(total))
      set('c:' .. k, fmt(cutoff))
    end
    used[i] = num('t:' .. k, 0)
    local newest = f['n:' .. k]
    if newest and tonumber(newest) > num('c:' .. k, -math.huge) then
      last[i] = newest
    end
  end
end
local function save()
  local out = {}
  for field, _ in pairs(changed) do
    if f[field] == nil then
      redis.call('HDEL', acct, field)
    else
      out[#out + 1] = field
      out[#out + 1] = f[field]
    end
  end
  if #out > 0 then
    redis.call('HSET', acct, unpack(out))
  end
end
local function answer(verdict, index, retry)
  save()
  local out = {verdict, index, fmt(retry)}
  for i = 1, windows do
    out[#out + 1] = fmt(used[i])
    out[#out + 1] = last[i] or ''
  end
  return out
end
for i = 1, windows do
  if used[i] + amounts[i] > limits[i] then
    local retry = -1
    if amounts[i] <= limits[i] then -- seconds until enough has left the window
      local needed = used[i] + amounts[i] - limits[i]
      local freed = 0
      retry = 0
      local k = ids[i]
      local entries = redis.call('ZRANGEBYSCORE', log, '(' .. fmt(num('c:' .. k, -math.huge)), '+inf', 'WITHSCORES')
      for j = 1, #entries, 2 do
        freed = freed + amount_in(entries[j], k)
        if freed >= needed then
          retry = math.max(0, tonumber(entries[j + 1]) + spans[i] - now)
          break
        end
      end
    end
    return answer(2, i, retry)
  end
end
if ARGV[5] == '0' then
  return answer(0, 0, 0)
end
local gift = num('gift', tonumber(ARGV[2]))
local charged = num('charged', tonumber(ARGV[3]))
local cost = tonumber(ARGV[4])
if gift + charged <= 0 or gift + charged < cost then
  return answer(3, 0, 0)
end
local from_gift = math.min(gift, cost)
set('gift', string.format('%.0f', gift - from_gift))
set('charged', string.format('%.0f', charged - (cost - from_gift)))
local keep = tonumber(ARGV[6])
if windows > 0 then
  local seq = num('seq', 0) + 1
  set('seq', string.format('%.0f', seq))
  local parts = {}
  for i = 1, windows do
    local k = ids[i]
    if not k then
      k = string.format('%.0f', num('ids', 0) + 1)
      set('ids', k)
      set('i:' .. ARGV[8 + (i - 1) * 4 + 1], k)
      set('c:' .. k, fmt(now - spans[i]))
      ids[i] = k
    end
    parts[#parts + 1] = k .. '=' .. ARGV[8 + (i - 1) * 4 + 4]
    used[i], last[i] = used[i] + amounts[i], now_text
    set('t:' .. k, fmt(used[i]))
    set('n:' .. k, now_text)
    longest = math.max(longest, spans[i])
  end
  set('span', fmt(longest))
  redis.call('ZADD', log, now_text, string.format('%.0f', seq) .. ':' .. table.concat(parts, ','))
  local ttl = longest * 1000
  if ARGV[7] == '1' then
    ttl = ttl + 604800000
  end
  if redis.call('PTTL', log) < ttl then
    redis.call('PEXPIRE', log, string.format('%.0f', ttl))
  end
  if keep > 0 then
    keep = math.max(keep, ttl) -- the account's totals outlive its log
  end
end
local result = answer(1, 0, 0)
if keep > 0 then
  redis.call('PEXPIRE', acct, string.format('%.0f', keep))
end
return result
"""
