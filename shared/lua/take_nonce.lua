-- Take an account-link nonce, once: the nonce is deleted as it is read (GETDEL)
-- and its external_id kept for the event that took it, so a replay of that
-- event (a crash before it was marked done) finds it again and any other event
-- finds nothing.
--
-- KEYS[1] {P}:nonces:<nonce>            STRING external_id registered for the nonce (deleted here)
-- KEYS[2] {P}:nonce-taken:<eventKey>    STRING external_id taken by that event, TTL
--
-- ARGV[1] TTL of the taken record, s
--
-- Returns the external_id, or false when the nonce is unknown, expired or taken by another event.
local ext = redis.call('GETDEL', KEYS[1])
if ext then
  redis.call('SET', KEYS[2], ext, 'EX', tonumber(ARGV[1]))
  return ext
end
return redis.call('GET', KEYS[2])
