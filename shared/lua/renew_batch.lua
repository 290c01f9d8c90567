#!lua flags=allow-oom
-- Extend a batch's lease, if the caller still holds it. A sender whose lease
-- lapsed may re-take it this way only while nobody else has claimed it (a
-- claim changes the owner), so at most one sender ever sends a batch at a time.
--
-- KEYS[1] {P}:batches:owner HASH batch id -> token of the sender holding its lease
-- KEYS[2] {P}:batches:due   ZSET batch id -> lease expiry (ms)
-- ARGV[1] batch id   ARGV[2] the caller's token   ARGV[3] new lease expiry (ms)
-- Returns 1 if renewed, 0 if the caller does not hold the batch (gone, or taken over).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
return 1
