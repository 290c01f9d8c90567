#!lua flags=allow-oom
--#include lhash
--#include state
--#include dedupe
-- Apply a batch of LINE events atomically: dedupe, newer-wins transition (lib/state.lua st_set),
-- outbox marking, forwarded events, stream acknowledgement, counters.
--
-- KEYS[1]  {P}:state            prefix of the state buckets (lib/state.lua); itself the old HASH
-- KEYS[2]  {P}:outbox:ready     ZSET  user -> first-dirty ms (users listed alone: changed by an event, or
--                                     whose value cannot carry the dirty flag)
-- KEYS[3]  {P}:outbox:events    LIST  forwarded custom events (JSON)
-- KEYS[4]  {P}:stats            HASH  counters
-- KEYS[5]  {P}:webhooks         STREAM entries to XACK and XDEL
-- KEYS[6]  {P}:dedupe           prefix of the remembered event ids (lib/dedupe.lua)
-- KEYS[7]  {P}:seen             prefix of the old dedupe marks {P}:seen:<eventId>, read until migrated
-- KEYS[8]  {P}:migrate          HASH  migration progress (shared/migrate.py): seen = done once moved
-- KEYS[9]  {P}:outbox:buckets   ZSET  state bucket holding dirty users -> first-dirty ms
--
-- ARGV[1] now ms      ARGV[2] dedupe TTL s     ARGV[3] consumer group
-- ARGV[4] n events    ARGV[5] n stream ids to ack   ARGV[6] n counter pairs
-- then per event, 6 values: the user's bucket field (shared/state.py field; '' for an id of another
-- form), that id ('' when the field is given), the value to store (shared/state.py pack, not
-- dirty; '' = no state), the event id's 16 bytes (shared/dedupe.py id_bytes; '' = not deduped),
-- the event id, forward JSON ('' = none)
-- then the stream ids, then counter name/increment pairs.
--
-- Returns {applied, duplicates, stale, unchanged, forwarded}.
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local group = ARGV[3]
local n = tonumber(ARGV[4])
local nack = tonumber(ARGV[5])
local nstat = tonumber(ARGV[6])
local applied, dups, stale, unchanged, forwarded = 0, 0, 0, 0, 0
local base = 6
local st = st_open(KEYS[1], KEYS[9], now)
local dd = nil
local old_seen = nil
-- Users an event makes dirty are listed alone while ready holds fewer than this many (~145 B each);
-- past it (deliveries stopped, a backlog grows) they are flagged in their buckets: no memory per user.
local ALONE_MAX = 10000
local alone = nil
for i = 0, n - 1 do
  local o = base + i * 6
  local value, idb, fwd = ARGV[o + 3], ARGV[o + 4], ARGV[o + 6]
  local fresh = true
  if idb ~= '' then
    if not dd then
      dd = dd_open(KEYS[6], now, ttl * 1000)
      old_seen = redis.call('HGET', KEYS[8], 'seen') ~= 'done'
    end
    if old_seen and redis.call('EXISTS', KEYS[7] .. ':' .. ARGV[o + 5]) == 1 then
      fresh = false
    else
      fresh = dd_remember(dd, ARGV[o + 5], idb)
    end
  end
  if not fresh then
    dups = dups + 1
  else
    if value ~= '' then
      local field, user = ARGV[o + 1], ARGV[o + 2]
      -- The id of a LINE user (sent as its field alone) is needed to move it from the old layout
      -- (st_read), to list it alone or when its value cannot carry the dirty flag.
      if user == '' and st.legacy then user = 'U' .. lh_bin2hex(field) end
      local cur, key, f, b = st_read(st, user, field)
      -- A webhook event (it has an id) that makes its user dirty lists the user alone in ready, as
      -- links and replays do, unless the user's bucket flags it already or ready is long (ALONE_MAX):
      -- events touch users here and there, and a claim then reads that one value, not a whole bucket
      -- for one dirty user. A change without an id (a resync's) flags the user in its bucket, as
      -- apply_states.lua does.
      if b and idb ~= '' and not (cur and st_is_dirty(cur)) then
        if alone == nil then alone = redis.call('ZCARD', KEYS[2]) < ALONE_MAX end
        if alone then b = nil end
      end
      if user == '' and (not b or not st_packed(value)) then user = 'U' .. lh_bin2hex(field) end
      local outcome, out = st_set(st, user, cur, b, value, false, KEYS[2])
      if outcome == 0 then
        stale = stale + 1
      else
        st_write(st, key, f, out, not cur)
        if outcome == 1 then applied = applied + 1 else unchanged = unchanged + 1 end
      end
    end
    if fwd ~= '' then
      redis.call('RPUSH', KEYS[3], fwd)
      forwarded = forwarded + 1
    end
  end
end
st_close(st)
if dd then dd_close(dd) end
local o = base + n * 6
if nack > 0 and group ~= '' then
  local ids = {}
  for i = 1, nack do ids[i] = ARGV[o + i] end
  redis.call('XACK', KEYS[5], group, unpack(ids))
  redis.call('XDEL', KEYS[5], unpack(ids))
end
o = o + nack
for i = 0, nstat - 1 do
  redis.call('HINCRBY', KEYS[4], ARGV[o + 2 * i + 1], tonumber(ARGV[o + 2 * i + 2]))
end
if applied > 0 then redis.call('HINCRBY', KEYS[4], 'transitions', applied) end
if dups > 0 then redis.call('HINCRBY', KEYS[4], 'duplicates', dups) end
if stale > 0 then redis.call('HINCRBY', KEYS[4], 'stale', stale) end
if unchanged > 0 then redis.call('HINCRBY', KEYS[4], 'unchanged', unchanged) end
return {applied, dups, stale, unchanged, forwarded}
