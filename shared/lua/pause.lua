-- Make every worker wait until ARGV[1] (ms) before calling the endpoint.
-- A pause only ever gets longer; the reason of the longest pause is kept.
--
-- KEYS[1] {P}:pause:<name> HASH until (ms), reason, kind
-- ARGV[1] until ms   ARGV[2] reason   ARGV[3] kind (rate_limit | auth)
local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local new = tonumber(ARGV[1])
if new > cur then
  redis.call('HSET', KEYS[1], 'until', new, 'reason', ARGV[2], 'kind', ARGV[3])
end
return math.max(cur, new)
