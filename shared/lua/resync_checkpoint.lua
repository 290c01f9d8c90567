-- Compare-and-set of a resync run's checkpoint and of its seen set, fenced by the chunk's lease.
--
-- KEYS[1] {P}:resync:run            HASH   the run
-- KEYS[2] {P}:resync:lease          STRING the chunk's lease token
-- KEYS[3] {P}:resync:seen:<runId>   SET    ids listed by the pass (mark-missing)
--
-- ARGV[1] run id   ARGV[2] lease token   ARGV[3] lease ms   ARGV[4] expected seq
-- ARGV[5] seen-set TTL ms   ARGV[6] n: ids to add to the seen set, or -1 to delete it
-- ARGV[7..6+n] those ids, then field/value pairs to HSET (seq is set to expected+1)
--
-- Returns 1 when written (and the lease renewed), 0 when the caller no longer
-- owns the run: the lease is someone else's, the run ended or was replaced, or
-- another checkpoint came first (nothing written).
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local run = redis.call('HMGET', KEYS[1], 'id', 'status', 'seq')
if run[1] ~= ARGV[1] or run[2] ~= 'running' or run[3] ~= ARGV[4] then return 0 end
local n = tonumber(ARGV[6])
if n < 0 then
  redis.call('DEL', KEYS[3])
  n = 0
elseif n > 0 then
  for i = 7, 6 + n, 1000 do
    redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 999, 6 + n)))
  end
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
end
redis.call('HSET', KEYS[1], 'seq', tostring(tonumber(ARGV[4]) + 1), unpack(ARGV, 7 + n))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
