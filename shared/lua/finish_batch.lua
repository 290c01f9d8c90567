#!lua flags=allow-oom
-- Finish a batch: release its users and delete it. Only the sender holding the
-- batch's lease may: one whose lease lapsed and was taken over (or a batch
-- already finished) changes nothing, so a late sender never releases users the
-- new owner still has in flight.
--
-- KEYS[1] {P}:outbox:inflight HASH  user id of another form (or of a batch an earlier release claimed) -> batch id
-- KEYS[2] {P}:batches         HASH  batch id -> JSON
-- KEYS[3] {P}:batches:due     ZSET  batch id -> ms
-- KEYS[4] {P}:dlq             STREAM dead letters
-- KEYS[5] {P}:stats           HASH  counters
-- KEYS[6] {P}:batches:retry   ZSET  batches waiting after a failure
-- KEYS[7] {P}:batches:owner   HASH  batch id -> token of the sender holding its lease
-- KEYS[8] {P}:rate:delivered:<t> STRING objects delivered in this 10 s bucket
-- KEYS[9] {P}:outbox:flying   HASH  LINE user's state field (16 bytes) -> batch id
--
-- ARGV[1] batch id   ARGV[2] the caller's token   ARGV[3] objects delivered
-- ARGV[4] n dead letters   ARGV[5] rate bucket TTL s   ARGV[6] n fields
-- then per dead letter 3 values: kind, reason, payload JSON
-- then the batch's users (the caller read them from the batch: the JSON is not decoded here):
-- n fields in flight in KEYS[9], then the user ids in flight in KEYS[1]
-- Returns 1 if the batch was finished here, 0 if the caller does not hold it (gone, or taken over).
local id = ARGV[1]
if redis.call('HGET', KEYS[7], id) ~= ARGV[2] then return 0 end
local ndead = tonumber(ARGV[4])
local first = 7 + ndead * 3
local ids = first + tonumber(ARGV[6])
-- Release its users: each is in flight in this batch alone (a claim marks only users not in
-- flight, and only the owner of their batch gets here), so no need to read whose they are.
if ids > first then redis.call('HDEL', KEYS[9], unpack(ARGV, first, ids - 1)) end
if ids <= #ARGV then redis.call('HDEL', KEYS[1], unpack(ARGV, ids, #ARGV)) end
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[7], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[6], id)
for i = 0, ndead - 1 do
  local o = 6 + i * 3
  redis.call('XADD', KEYS[4], '*', 'kind', ARGV[o + 1], 'reason', ARGV[o + 2], 'payload', ARGV[o + 3])
end
local delivered = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[5], 'delivered_objects', delivered)
if delivered > 0 then
  redis.call('INCRBY', KEYS[8], delivered)
  redis.call('EXPIRE', KEYS[8], tonumber(ARGV[5]))
end
redis.call('HINCRBY', KEYS[5], 'batches_sent', 1)
if ndead > 0 then redis.call('HINCRBY', KEYS[5], 'dead_lettered', ndead) end
return 1
