#!lua flags=allow-oom
-- Record a retryable failure on the shared circuit breaker. Only the first
-- failure after the breaker (re)opens for probing counts: failures of requests
-- that were already under way do not stretch the wait again.
--
-- KEYS[1] {P}:breaker:<name>       HASH streak, open_until (ms)
-- KEYS[2] {P}:breaker:<name>:probe STRING probing worker's mark
-- ARGV[1] now ms   ARGV[2] streak the caller saw   ARGV[3] delay ms for streak+1
-- Returns {streak, open_until}
local now = tonumber(ARGV[1])
local streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0')
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until <= now and streak == tonumber(ARGV[2]) then
  streak = streak + 1
  open_until = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'streak', streak, 'open_until', open_until, 'since', redis.call('HGET', KEYS[1], 'since') or now)
end
redis.call('DEL', KEYS[2])
return {streak, open_until}
