#!lua flags=allow-oom
--#include lhash
--#include state
-- Set many users' states at once, newest wins by the rule apply_events.lua also applies
-- (lib/state.lua st_set): a resync page's writes (shared/state.py apply, for changes with a
-- state and no event id, forward, ack or counter). Three values per LINE user (six for
-- apply_events.lua): the new values come packed, the versions are read from them only to
-- compare with a stored one; the buckets made dirty are listed in the outbox in one ZADD.
--
-- KEYS[1] {P}:state           prefix of the state buckets (lib/state.lua); itself the old HASH
-- KEYS[2] {P}:outbox:ready    ZSET  user -> first-dirty ms (users whose value cannot carry the dirty flag)
-- KEYS[3] {P}:stats           HASH  counters
-- KEYS[4] {P}:outbox:buckets  ZSET  state bucket holding dirty users -> first-dirty ms
--
-- ARGV[1] now ms   ARGV[2] n users with a LINE user id ("U" + 32 lowercase hex digits)
-- ARGV[3] the bucket count the caller computed their buckets for (0: none computed)
-- ARGV[4] buckets to grow toward now (0: none): the count a first sync will need, split while they are
--         nearly empty (cheap) rather than full (each split moves half a bucket)
-- then per such user 3 values: its bucket field (its 16 bytes), the value (shared/state.py pack,
-- dirty: what a new or changed user gets; cleared here when it stays clean), its bucket for
-- ARGV[3] buckets as a decimal string ('' if none); a bucket split since is recomputed here
-- then per other user 2 values: the user id, the value.
-- In order: a user given twice ends at the newer of the two.
--
-- Returns {applied, 0, stale, unchanged, 0} (apply_events.lua's reply), then the bucket count after.
local now = tonumber(ARGV[1])
local nline = tonumber(ARGV[2])
local st = st_open(KEYS[1], KEYS[4], now)
local lo, hi = lh_doubt(tonumber(ARGV[3]), st.n)
st.reserve = tonumber(ARGV[4])
local pre = KEYS[1] .. ':'
local applied, stale, unchanged = 0, 0, 0
local function count(outcome)
  if outcome == 0 then stale = stale + 1 elseif outcome == 1 then applied = applied + 1 else unchanged = unchanged + 1 end
end
-- New users (a first sync): a packed value is inserted with HSETNX, one search of the bucket
-- instead of two (HGET, HSET); once a user turns out to be stored already (a resync over known
-- users), the rest are read first.
local fresh = not st.legacy
for i = 5, 4 + 3 * nline, 3 do
  local f, value, bs = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local b = tonumber(bs)
  local key, _
  if b and (b < lo or b >= hi) then key = pre .. bs else key, _, b = st_at(st, nil, f) bs = nil end
  local done = false
  if fresh and sbyte(value, 1) ~= 255 then
    done = st_insert(st, key, f, value, b, bs)
    fresh = done
  end
  if done then
    applied = applied + 1
  else
    -- The user id itself is only needed to move it from the old layout or to list it alone.
    local user = nil
    if st.legacy or sbyte(value, 1) == 255 then user = 'U' .. lh_bin2hex(f) end
    local cur = st_get(st, key, f, user)
    local outcome, out = st_set(st, user, cur, b, value, true, KEYS[2])
    if outcome ~= 0 then st_write(st, key, f, out, not cur) end
    count(outcome)
  end
end
for i = 5 + 3 * nline, #ARGV, 2 do
  local user, value = ARGV[i], ARGV[i + 1]
  local cur, key, f, b = st_read(st, user)
  local outcome, out = st_set(st, user, cur, b, value, true, KEYS[2])
  if outcome ~= 0 then st_write(st, key, f, out, not cur) end
  count(outcome)
end
st_close(st)
if applied > 0 then redis.call('HINCRBY', KEYS[3], 'transitions', applied) end
if stale > 0 then redis.call('HINCRBY', KEYS[3], 'stale', stale) end
if unchanged > 0 then redis.call('HINCRBY', KEYS[3], 'unchanged', unchanged) end
return {applied, 0, stale, unchanged, 0, st.n}
