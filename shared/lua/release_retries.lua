#!lua flags=allow-oom
-- Braze answered again after failures: every batch waiting to retry becomes due
-- now, spread ARGV[2] ms apart so they do not all go in the same instant (the
-- rate limiter spaces them anyway). Their attempt counts are kept.
--
-- KEYS[1] {P}:batches:due    ZSET batch id -> ms
-- KEYS[2] {P}:batches:retry  ZSET batch id -> ms (emptied)
-- ARGV[1] now ms   ARGV[2] spacing ms
-- Returns how many batches were pulled forward.
local now, gap = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for i, id in ipairs(ids) do
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'LT', now + (i - 1) * gap, id)
  end
end
redis.call('DEL', KEYS[2])
return #ids
