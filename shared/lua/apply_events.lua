#!lua flags=allow-oom
--#include lhash
--#include state
--#include dedupe
-- Apply a batch of LINE events atomically: dedupe, newer-wins transition,
-- outbox marking, forwarded events, stream acknowledgement, counters.
--
-- KEYS[1]  {P}:state            prefix of the state buckets (lib/state.lua); itself the old HASH
-- KEYS[2]  {P}:outbox:ready     ZSET  user -> first-dirty ms (users whose value cannot carry the dirty flag)
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
-- then per event, 11 values: user, its bucket field ('' = an id of another form), version ('' when its
-- parts follow), state (S|U|''),
-- the value to store (packed by shared/state.py pack, not dirty), the version's timestamp, arrival and
-- seq*10000+index ('' if it is of another form), event id ('' = not deduped), forward JSON ('' = none),
-- the event id's 16 bytes (shared/dedupe.py id_bytes; '' if none)
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
for i = 0, n - 1 do
  local o = base + i * 11
  local user, field, version, state, eid, fwd = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 9], ARGV[o + 10]
  local fresh = true
  if eid ~= '' then
    if not dd then
      dd = dd_open(KEYS[6], now, ttl * 1000)
      old_seen = redis.call('HGET', KEYS[8], 'seen') ~= 'done'
    end
    if old_seen and redis.call('EXISTS', KEYS[7] .. ':' .. eid) == 1 then
      fresh = false
    else
      fresh = dd_remember(dd, eid, ARGV[o + 11])
    end
  end
  if not fresh then
    dups = dups + 1
  else
    if state ~= '' then
      local cur, key, f, b = st_read(st, user, field)
      local was_dirty = cur and st_is_dirty(cur) or false
      local newer, cur_state = true, nil
      if cur then newer, cur_state = st_newer(version, cur, tonumber(ARGV[o + 6]), tonumber(ARGV[o + 7]), tonumber(ARGV[o + 8])) end
      if not newer then
        stale = stale + 1
      else
        local changed = cur_state ~= state
        local value = ARGV[o + 5]
        if not st_packed(value) then
          if was_dirty then
            st.dirtied = st.dirtied - 1
            redis.call('ZADD', KEYS[2], 'NX', now, user)
            was_dirty = false
          end
          b = nil
        elseif b ~= nil and (changed or was_dirty) then
          value = st_dirty(value)
        end
        st_write(st, key, f, value, not cur)
        if changed then
          st_mark(st, b, was_dirty, user, KEYS[2])
          applied = applied + 1
        else
          unchanged = unchanged + 1
        end
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
local o = base + n * 11
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
