#!lua flags=no-writes
--#include lhash
--#include state
-- Read users' stored states (shared/state.py get_many decodes them). Read only.
--
-- KEYS[1] {P}:state   prefix of the state buckets (lib/state.lua); itself the old HASH
-- ARGV    user ids
--
-- Returns per user two values: the packed value (or false), the old layout's
-- "<version><S|U>" (or false; only while that hash exists).
local n = lh_meta(KEYS[1] .. ':meta')
local st = {prefix = KEYS[1], n = n}
local old = redis.call('EXISTS', KEYS[1]) == 1
local out = {}
for i, user in ipairs(ARGV) do
  local key, f = st_where(st, user)
  out[2 * i - 1] = redis.call('HGET', key, f)
  out[2 * i] = old and redis.call('HGET', KEYS[1], user) or false
end
return out
