-- Ends a resync run, once: status and fields, history entry, lock, seen set, lease.
--
-- KEYS[1] {P}:resync:run            HASH   the run
-- KEYS[2] {P}:resync:lease          STRING the chunk's lease token
-- KEYS[3] {P}:resync:lock           STRING the running run's id
-- KEYS[4] {P}:resync:history        LIST   JSON summaries of finished runs, newest first
-- KEYS[5] {P}:resync:seen:<runId>   SET    ids listed by the pass (deleted)
--
-- ARGV[1] run id   ARGV[2] lease token ('' = not fenced: an operator's cancel)
-- ARGV[3] history max   ARGV[4] summary JSON   ARGV[5..] field/value pairs to HSET
--
-- Returns 1 when the run ended now, 0 when it was not running (or not ours).
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local run = redis.call('HMGET', KEYS[1], 'id', 'status')
if run[1] ~= ARGV[1] or run[2] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('LPUSH', KEYS[4], ARGV[4])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
redis.call('DEL', KEYS[5])
if ARGV[2] ~= '' then redis.call('DEL', KEYS[2]) end
return 1
