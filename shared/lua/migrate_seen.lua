#!lua flags=allow-oom
--#include lhash
--#include dedupe
-- Move one chunk of the old dedupe marks ({P}:seen:<eventId> STRING, TTL) into the
-- current window (shared/migrate.py): remembered there for at least one more TTL,
-- never less than the mark had left. accountLink marks ({P}:seen:accountLink:*) stay.
--
-- KEYS[1] {P}:seen      prefix of the old marks
-- KEYS[2] {P}:dedupe    prefix of the windows (lib/dedupe.lua)
-- KEYS[3] {P}:migrate   HASH  progress: seen = the SCAN cursor to go on from, or done
-- ARGV[1] SCAN cursor   ARGV[2] chunk size   ARGV[3] MATCH pattern of the old marks
-- ARGV[4] now ms   ARGV[5] dedupe TTL s
-- Returns {next cursor ('0' = walked), marks moved}.
local res = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', tonumber(ARGV[2]))
local dd = dd_open(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]) * 1000)
local skip = KEYS[1] .. ':accountLink:'
local from = #KEYS[1] + 2
local moved, gone = 0, {}
for _, key in ipairs(res[2]) do
  if string.sub(key, 1, #skip) ~= skip then
    dd_remember(dd, string.sub(key, from))
    gone[#gone + 1] = key
    moved = moved + 1
  end
end
if #gone > 0 then redis.call('DEL', unpack(gone)) end
dd_close(dd)
redis.call('HSET', KEYS[3], 'seen', res[1] == '0' and 'done' or res[1])
return {res[1], moved}
