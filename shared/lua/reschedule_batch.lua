#!lua flags=allow-oom
-- Put a batch back to wait until ARGV[2] (ms), optionally storing its new JSON
-- (attempt count, last error). Its users stay in flight, so no newer state of
-- theirs can overtake it. Only the sender holding the batch's lease may; the
-- batch then has no owner until the next claim takes it.
--
-- KEYS[1] {P}:batches       HASH batch id -> JSON
-- KEYS[2] {P}:batches:due   ZSET batch id -> ms
-- KEYS[3] {P}:batches:retry ZSET batch id -> ms, batches waiting after a failure
-- KEYS[4] {P}:batches:owner HASH batch id -> token of the sender holding its lease
-- ARGV[1] batch id   ARGV[2] due ms   ARGV[3] new JSON ('' = keep)
-- ARGV[4] '1' = it waits to retry after a failure (pulled forward when Braze recovers)
-- ARGV[5] the caller's token
-- Returns 1, or 0 if the caller does not hold the batch (gone, or taken over).
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[5] then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return 1
