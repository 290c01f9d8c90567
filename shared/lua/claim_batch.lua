#!lua flags=allow-oom
-- Take the next batch to deliver: an overdue batch (crashed sender or a retry
-- whose time has come) first, else a new batch from the outbox.
--
-- KEYS[1] {P}:outbox:ready    ZSET  user -> first-dirty ms (oldest first)
-- KEYS[2] {P}:state           HASH  user -> version..state (read: always the newest)
-- KEYS[3] {P}:outbox:inflight HASH  user -> batch id
-- KEYS[4] {P}:batches         HASH  batch id -> JSON
-- KEYS[5] {P}:batches:due     ZSET  batch id -> lease expiry / retry time (ms)
-- KEYS[6] {P}:links:line      HASH  user -> newline-separated external ids
-- KEYS[7] {P}:outbox:events   LIST  forwarded custom events (JSON with field q = enqueue ms)
-- KEYS[8] {P}:batches:retry   ZSET  batch id -> retry time (ms), for batches waiting after a failure
-- KEYS[9] {P}:batches:owner   HASH  batch id -> token of the sender holding its lease
--
-- ARGV[1] now ms   ARGV[2] max objects per batch   ARGV[3] flush delay ms
-- ARGV[4] id for a new batch   ARGV[5] lease ms   ARGV[6] max open batches
-- ARGV[7] '1' = the caller will probe a failing Braze: with no batch due, take the
--         batch waiting longest to retry, even early (its success ends the outage for all)
-- ARGV[8] the claiming sender's token: it becomes the batch's owner (a batch taken over
--         changes owner, so the sender that lost it can no longer settle it)
--
-- Returns {'old', id, json} | {'new', id, json} | {'wait', ms} | {'full'} | {'empty'}
local now = tonumber(ARGV[1])
local max_objects = tonumber(ARGV[2])
local delay = tonumber(ARGV[3])
local lease = tonumber(ARGV[5])

local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 1)
if not due[1] and ARGV[7] == '1' then
  due = redis.call('ZRANGE', KEYS[8], 0, 0)
end
if due[1] then
  local body = redis.call('HGET', KEYS[4], due[1])
  redis.call('ZREM', KEYS[8], due[1])
  if body then
    redis.call('ZADD', KEYS[5], now + lease, due[1])
    redis.call('HSET', KEYS[9], due[1], ARGV[8])
    return {'old', due[1], body}
  end
  redis.call('ZREM', KEYS[5], due[1])
  redis.call('HDEL', KEYS[9], due[1])
end
if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then
  return {'full'}
end

-- Pick users oldest first, skipping those already in flight, until the batch is full.
local picked, objects = {}, 0
local oldest = nil
-- Read the candidates a batch's worth at a time (most are not in flight: a claimed
-- user leaves the ZSET), at most four batches' worth in all.
local full = false
for chunk = 0, 3 do
  local scan = redis.call('ZRANGE', KEYS[1], chunk * max_objects, (chunk + 1) * max_objects - 1, 'WITHSCORES')
  for i = 1, #scan, 2 do
    local user = scan[i]
    if redis.call('HEXISTS', KEYS[3], user) == 0 then
      local links = redis.call('HGET', KEYS[6], user)
      local cost = 1
      if links then
        for _ in string.gmatch(links, '[^\n]+') do cost = cost + 1 end
      end
      if objects + cost > max_objects and objects > 0 then full = true break end
      if oldest == nil then oldest = tonumber(scan[i + 1]) end
      picked[#picked + 1] = {user, links}
      objects = objects + cost
      if objects >= max_objects then full = true break end
    end
  end
  if full or #scan < 2 * max_objects then break end
end
local nevents = 0
if objects < max_objects then
  nevents = math.min(redis.call('LLEN', KEYS[7]), max_objects - objects)
  if nevents > 0 then
    -- The oldest event's q. One cjson cannot read (a lone surrogate escape, which
    -- Python's json writes) or without a numeric q counts as long due: it leaves
    -- with this batch instead of failing every claim.
    local ok, first = pcall(cjson.decode, redis.call('LINDEX', KEYS[7], 0))
    local q = ok and type(first) == 'table' and tonumber(first.q) or 0
    if oldest == nil or q < oldest then oldest = q end
  end
end
if #picked == 0 and nevents == 0 then return {'empty'} end
if objects + nevents < max_objects and oldest + delay > now then
  return {'wait', oldest + delay - now}
end

local id = ARGV[4]
local items = {}
for _, p in ipairs(picked) do
  local user = p[1]
  local st = redis.call('HGET', KEYS[2], user)
  redis.call('ZREM', KEYS[1], user)
  if st or p[2] then
    redis.call('HSET', KEYS[3], user, id)
    local item = {u = user, x = p[2] or ''}
    if st then item.v = st end
    items[#items + 1] = item
  end
end
local events = {}
if nevents > 0 then
  for i = 1, nevents do events[i] = redis.call('LPOP', KEYS[7]) end
end
if #items == 0 and #events == 0 then return {'empty'} end
local body = cjson.encode({id = id, items = items, events = events, attempts = 0, created = now})
redis.call('HSET', KEYS[4], id, body)
redis.call('ZADD', KEYS[5], now + lease, id)
redis.call('HSET', KEYS[9], id, ARGV[8])
return {'new', id, body}
