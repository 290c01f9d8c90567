#!lua flags=allow-oom
-- Make every worker wait until ARGV[1] (ms) before calling the endpoint.
-- A pause only ever gets longer; the reason of the longest pause is kept.
--
-- A pause never reaches past ARGV[5] (now + BRAZE_PAUSE_MAX_SECONDS), whatever
-- Braze's headers said; `linesync pauses --clear` lifts one (DEL).
--
-- KEYS[1] {P}:pause:<name> HASH until (ms), reason, kind, since (ms)
-- ARGV[1] until ms   ARGV[2] reason   ARGV[3] kind (rate_limit | auth)
-- ARGV[4] now ms     ARGV[5] latest allowed until ms
local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local latest = tonumber(ARGV[5])
local new = math.min(tonumber(ARGV[1]), latest)
if cur > latest then  -- set before the cap existed, or from a misread header
  cur = latest
  redis.call('HSET', KEYS[1], 'until', cur)
end
if new > cur then
  redis.call('HSET', KEYS[1], 'until', new, 'reason', ARGV[2], 'kind', ARGV[3], 'since', ARGV[4])
end
return math.max(cur, new)
