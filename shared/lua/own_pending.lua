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
-- Returns {{id, {field, value, ...}}, ...}: up to ARGV[3] of the consumer's pending entries.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
if #pending == 0 then
  return {}
end
local ids = {}
local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
for i, p in ipairs(pending) do
  ids[i] = p[1]
  claim[#claim + 1] = p[1]
end
claim[#claim + 1] = 'JUSTID'
redis.call(unpack(claim))
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
return out
