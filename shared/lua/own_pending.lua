#!lua flags=allow-oom
-- A stream consumer's own pending entries, renewed: each one's idle time is reset
-- (XCLAIM ... JUSTID, which counts no delivery), so a consumer that still holds
-- them, waiting (a pause, an open breaker, a profile not yet in Braze), does not
-- see them taken over as stale. Entries deleted from the stream leave the PEL.
-- Only entries this consumer owns at the time are touched: one another consumer
-- has just claimed is never claimed back.
--
-- KEYS[1]  a stream (group ARGV[1])   STREAM  its PEL is read and renewed
--
-- ARGV[1] consumer group   ARGV[2] consumer name
-- ARGV[3] entries to return (oldest first)   ARGV[4] entries to renew at most (>= ARGV[3])
--
-- Returns {renewed ids, {{id, {field, value, ...}}, ...}}: every id renewed, and up to
-- ARGV[3] of the consumer's pending entries with their fields.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
if #pending == 0 then
  return {{}, {}}
end
local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
for _, p in ipairs(pending) do
  claim[#claim + 1] = p[1]
end
claim[#claim + 1] = 'JUSTID'
local ids = redis.call(unpack(claim))  -- those still in the stream (Redis 7 drops the others from the PEL)
local want = tonumber(ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  if #out >= want then
    break
  end
  local e = redis.call('XRANGE', KEYS[1], id, id)
  if #e == 1 then
    out[#out + 1] = e[1]
  end
end
return {ids, out}
