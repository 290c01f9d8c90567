#!lua flags=allow-oom
-- Finish a batch: release its users and delete it. Idempotent: finishing a
-- batch that is gone (another worker finished it) changes nothing.
--
-- KEYS[1] {P}:outbox:inflight HASH  user -> batch id
-- KEYS[2] {P}:batches         HASH  batch id -> JSON
-- KEYS[3] {P}:batches:due     ZSET  batch id -> ms
-- KEYS[4] {P}:dlq             STREAM dead letters
-- KEYS[5] {P}:stats           HASH  counters
-- KEYS[6] {P}:batches:retry   ZSET  batches waiting after a failure
-- KEYS[7] {P}:rate:delivered:<t> STRING objects delivered in this 10 s bucket
--
-- ARGV[1] batch id   ARGV[2] objects delivered   ARGV[3] n dead letters
-- ARGV[4] rate bucket TTL s
-- then per dead letter 3 values: kind, reason, payload JSON
-- Returns 1 if the batch was finished here, 0 if it was already gone.
local id = ARGV[1]
local body = redis.call('HGET', KEYS[2], id)
if not body then return 0 end
local batch = cjson.decode(body)
for _, item in ipairs(batch.items) do
  if redis.call('HGET', KEYS[1], item.u) == id then
    redis.call('HDEL', KEYS[1], item.u)
  end
end
redis.call('HDEL', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[6], id)
local ndead = tonumber(ARGV[3])
for i = 0, ndead - 1 do
  local o = 4 + i * 3
  redis.call('XADD', KEYS[4], '*', 'kind', ARGV[o + 1], 'reason', ARGV[o + 2], 'payload', ARGV[o + 3])
end
redis.call('HINCRBY', KEYS[5], 'delivered_objects', tonumber(ARGV[2]))
if tonumber(ARGV[2]) > 0 then
  redis.call('INCRBY', KEYS[7], tonumber(ARGV[2]))
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[4]))
end
redis.call('HINCRBY', KEYS[5], 'batches_sent', 1)
if ndead > 0 then redis.call('HINCRBY', KEYS[5], 'dead_lettered', ndead) end
return 1
