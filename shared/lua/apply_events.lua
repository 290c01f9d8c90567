#!lua flags=allow-oom
-- Apply a batch of LINE events atomically: dedupe, newer-wins transition,
-- outbox marking, forwarded events, stream acknowledgement, counters.
--
-- KEYS[1]  {P}:state            HASH  user -> version..state
-- KEYS[2]  {P}:outbox:ready     ZSET  user -> first-dirty ms
-- KEYS[3]  {P}:outbox:events    LIST  forwarded custom events (JSON)
-- KEYS[4]  {P}:stats            HASH  counters
-- KEYS[5]  {P}:webhooks         STREAM entries to XACK and XDEL
-- KEYS[6..] {P}:seen:<eventId>  STRING dedupe marks, referenced by index below
--
-- ARGV[1] now ms      ARGV[2] dedupe TTL s     ARGV[3] consumer group
-- ARGV[4] n events    ARGV[5] n stream ids to ack   ARGV[6] n counter pairs
-- then per event, 5 values: user, version, state (S|U|''), seen-key index (0 = none), forward JSON ('' = none)
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
for i = 0, n - 1 do
  local o = base + i * 5
  local user, version, state, seen, fwd = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], tonumber(ARGV[o + 4]), ARGV[o + 5]
  local fresh = true
  if seen > 0 then
    fresh = redis.call('SET', KEYS[seen], '1', 'NX', 'EX', ttl) ~= false
  end
  if not fresh then
    dups = dups + 1
  else
    if state ~= '' then
      local cur = redis.call('HGET', KEYS[1], user)
      local newval = version .. state
      if not cur then
        redis.call('HSET', KEYS[1], user, newval)
        redis.call('ZADD', KEYS[2], 'NX', now, user)
        applied = applied + 1
      elseif string.sub(cur, 1, -2) >= version then
        stale = stale + 1
      else
        redis.call('HSET', KEYS[1], user, newval)
        if string.sub(cur, -1) ~= state then
          redis.call('ZADD', KEYS[2], 'NX', now, user)
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
local o = base + n * 5
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
