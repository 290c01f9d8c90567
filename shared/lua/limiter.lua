#!lua flags=allow-oom
-- May one more request go to an endpoint now? Checks, in order: a pause every
-- worker must respect (429 until reset, or a configuration error), an open
-- circuit breaker (shared retry backoff after 5xx/timeouts), a half-open
-- breaker (only one worker probes), then a GCRA rate limit shared by every
-- worker on every host.
--
-- KEYS[1] {P}:limit:<name>         STRING GCRA theoretical arrival time (ms)
-- KEYS[2] {P}:pause:<name>         HASH   until (ms), reason
-- KEYS[3] {P}:breaker:<name>       HASH   streak, open_until (ms)
-- KEYS[4] {P}:breaker:<name>:probe STRING the probing worker's mark
--
-- ARGV[1] now ms ('' = use the Redis server's clock, the same for every host)
-- ARGV[2] emission interval ms (period / requests; may be fractional)
-- ARGV[3] burst tolerance ms   ARGV[4] probe lease ms
-- ARGV[5] 'take' (default) | 'peek': only say whether a sender may go ahead now
--         (pause and breaker), taking neither a token nor the probe
-- ARGV[6] longest reservation ms ('' = 0): with 'take', a slot this close is reserved
--         and {1, wait} returned: the caller sleeps `wait` ms, then sends (one call, not a retry loop)
--
-- Returns {allowed (0|1), wait ms, why ('' | 'paused:<reason>' | 'breaker' | 'probing' | 'rate' ), probe (0|1)}
-- (allowed with wait > 0: a reserved slot, to be used after wait ms)
-- (with 'peek', probe 1 means the breaker is half-open and nobody probes yet)
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])

local until_ms = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
if until_ms > now then
  return {0, until_ms - now, 'paused:' .. (redis.call('HGET', KEYS[2], 'reason') or ''), 0}
end

local probe = 0
local streak = tonumber(redis.call('HGET', KEYS[3], 'streak') or '0')
if streak > 0 then
  local open_until = tonumber(redis.call('HGET', KEYS[3], 'open_until') or '0')
  if open_until > now then
    return {0, open_until - now, 'breaker', 0}
  end
  if ARGV[5] == 'peek' then
    if redis.call('EXISTS', KEYS[4]) == 1 then return {0, 200, 'probing', 0} end
    return {1, 0, '', 1}
  end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', tonumber(ARGV[4])) then
    return {0, 200, 'probing', 0}
  end
  probe = 1
end
if ARGV[5] == 'peek' then return {1, 0, '', 0} end

local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval - tolerance
local wait = 0
if allow_at > now then
  wait = math.ceil(allow_at - now)
  if wait > (tonumber(ARGV[6]) or 0) then
    if probe == 1 then redis.call('DEL', KEYS[4]) end
    return {0, wait, 'rate', 0}
  end
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now + tolerance + 1000))
return {1, wait, '', probe}
