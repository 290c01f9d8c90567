#!lua flags=allow-oom
-- A lease held by one token: take it, renew it, or give it back.
--
-- KEYS[1] the lease key ({P}:worker:<name>: a worker process's; {P}:resync:lease: the running resync's)
-- ARGV[1] 'take' | 'renew' | 'release'   ARGV[2] token   ARGV[3] lease ms
-- Returns 1 if this token holds (or held, for release) the lease, else 0.
local op, token = ARGV[1], ARGV[2]
if op == 'take' then
  if redis.call('SET', KEYS[1], token, 'NX', 'PX', tonumber(ARGV[3])) then return 1 end
  if redis.call('GET', KEYS[1]) == token then
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[1]) ~= token then return 0 end
if op == 'renew' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
else
  redis.call('DEL', KEYS[1])
end
return 1
