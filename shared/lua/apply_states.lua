#!lua flags=allow-oom
--#include lhash
--#include state
-- Set many users' states at once, newest wins by the rule apply_events.lua also applies
-- (lib/state.lua st_set): a resync page's writes (shared/state.py apply, for changes with a
-- state and no event id, forward, ack or counter). The new values come packed; one HSET per
-- bucket written, the buckets listed in the outbox in one ZADD.
--
-- KEYS[1] {P}:state           prefix of the state buckets (lib/state.lua); itself the old HASH
-- KEYS[2] {P}:outbox:ready    ZSET  user -> first-dirty ms (users whose value cannot carry the dirty flag)
-- KEYS[3] {P}:stats           HASH  counters
-- KEYS[4] {P}:outbox:buckets  ZSET  state bucket holding dirty users -> first-dirty ms
--
-- ARGV[1] now ms   ARGV[2] n users with a LINE user id ("U" + 32 lowercase hex digits)
-- then per such user 2 values: its bucket field (its 16 bytes), the value (shared/state.py pack, not dirty)
-- then per other user 2 values: the user id, the value.
-- In order: a user given twice ends at the newer of the two.
--
-- Returns {applied, 0, stale, unchanged, 0} (apply_events.lua's reply).
local now = tonumber(ARGV[1])
local nline = tonumber(ARGV[2])
local st = st_open(KEYS[1], KEYS[4], now)
local applied, stale, unchanged = 0, 0, 0
local pending = {}  -- key -> {field -> value to write}
local order = {}    -- keys in the order first written
for i = 3, #ARGV, 2 do
  local id, value = ARGV[i], ARGV[i + 1]
  local user, key, f, b
  if i < 3 + 2 * nline then
    key, f, b = st_at(st, nil, id)
    user = nil
  else
    key, f, b = st_where(st, id)
    user = id
  end
  local pend = pending[key]
  local cur = pend and pend[f]
  if cur == nil then
    if st.legacy and not user then user = 'U' .. lh_bin2hex(f) end
    cur = st_get(st, key, f, user)
  end
  local state, ts, arr, si, version = st_fields(value)
  if not user and (not st_packed(value) or not b) then user = 'U' .. lh_bin2hex(f) end
  local outcome, out = st_set(st, user, cur, b, version, state, value, ts, arr, si, KEYS[2])
  if outcome == 0 then
    stale = stale + 1
  else
    if not pend then
      pend = {}
      pending[key] = pend
      order[#order + 1] = key
    end
    if not cur then st.added = st.added + 1 end
    pend[f] = out
    if outcome == 1 then applied = applied + 1 else unchanged = unchanged + 1 end
  end
end
for _, key in ipairs(order) do
  local args = {}
  for f, value in pairs(pending[key]) do
    args[#args + 1] = f
    args[#args + 1] = value
  end
  redis.call('HSET', key, unpack(args))
end
st_close(st)
if applied > 0 then redis.call('HINCRBY', KEYS[3], 'transitions', applied) end
if stale > 0 then redis.call('HINCRBY', KEYS[3], 'stale', stale) end
if unchanged > 0 then redis.call('HINCRBY', KEYS[3], 'unchanged', unchanged) end
return {applied, 0, stale, unchanged, 0}
