#!lua flags=allow-oom
--#include lhash
--#include state
-- Move one chunk of the old state hash into the buckets (shared/migrate.py): newer wins
-- against a state already in the buckets; each moved user leaves the old hash in the
-- same step, so a run killed anywhere resumes without loss or double counting.
--
-- KEYS[1] {P}:state     prefix of the state buckets (lib/state.lua); itself the old HASH
-- KEYS[2] {P}:migrate   HASH  progress: state = the HSCAN cursor to go on from, or done
-- KEYS[3] {P}:outbox:buckets ZSET state buckets holding dirty users (a split may move some)
-- ARGV[1] HSCAN cursor   ARGV[2] chunk size
-- Returns {next cursor ('0' = walked), users moved}.
local res = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local st = st_open(KEYS[1], KEYS[3], 0)
st.legacy = false
local moved, gone = 0, {}
local entries = res[2]
for i = 1, #entries, 2 do
  local user, old = entries[i], entries[i + 1]
  local version, state = string.sub(old, 1, -2), string.sub(old, -1)
  local cur, key, f = st_read(st, user)
  if not cur then
    st_write(st, key, f, st_pack(version, state, false), true)
  elseif (st_newer(version, cur)) then
    st_write(st, key, f, st_pack(version, state, st_is_dirty(cur)), false)
  end
  gone[#gone + 1] = user
  moved = moved + 1
end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
st_close(st)
local nxt = res[1]
if nxt == '0' and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[2], 'state', 'done')
else
  redis.call('HSET', KEYS[2], 'state', nxt)
end
return {nxt, moved}
