#!lua flags=allow-oom
--#include lhash
--#include state
-- Take the next batch to deliver: an overdue batch (crashed sender or a retry
-- whose time has come) first, else a new batch from the outbox.
--
-- KEYS[1] {P}:outbox:ready    ZSET  user -> first-dirty ms (oldest first)
-- KEYS[2] {P}:state           prefix of the state buckets (lib/state.lua; read: always the newest)
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
-- Redis is asked per batch, not per user: a handful of calls whatever the batch size,
-- and the batch value is made of the replies as they come (no table per user).
local users, links, states, objects = {}, {}, {}, 0
local oldest = nil
-- Read the candidates a batch's worth at a time (most are not in flight: a claimed
-- user leaves the ZSET), at most four batches' worth in all.
local full = false
local any_links = redis.call('EXISTS', KEYS[6]) == 1
local st = st_open(KEYS[2])
for chunk = 0, 3 do
  local scan = redis.call('ZRANGE', KEYS[1], chunk * max_objects, (chunk + 1) * max_objects - 1)
  if #scan == 0 then break end
  local flying = redis.call('HMGET', KEYS[3], unpack(scan))
  local linked = any_links and redis.call('HMGET', KEYS[6], unpack(scan)) or {}
  local stated = {}
  for j, user in ipairs(scan) do
    local cur = st_read(st, user)
    if cur then
      local version, state = st_unpack(cur)
      stated[j] = version .. state
    else
      stated[j] = false
    end
  end
  for j, user in ipairs(scan) do
    if not flying[j] then
      -- The objects it makes (shared/payload.py objects_for): its alias profile if it has a
      -- state, and each linked profile. None: nothing to send, it just leaves the outbox.
      local cost = stated[j] and 1 or 0
      if linked[j] then
        for _ in string.gmatch(linked[j], '[^\n]+') do cost = cost + 1 end
      end
      if objects + cost > max_objects and objects > 0 then full = true break end
      if oldest == nil then oldest = tonumber(redis.call('ZSCORE', KEYS[1], user)) end
      users[#users + 1] = user
      links[#links + 1] = linked[j] or false
      states[#states + 1] = stated[j]
      objects = objects + cost
      if objects >= max_objects then full = true break end
    end
  end
  if full or #scan < max_objects then break end
end
st_close(st)
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
if #users == 0 and nevents == 0 then return {'empty'} end
if objects + nevents < max_objects and oldest + delay > now then
  return {'wait', oldest + delay - now}
end

-- The batch value: its layout is shared/batch.py's (the codec, round-trip tested with this
-- script): parallel arrays of users, their links and their states (false: none).
local id = ARGV[4]
local u, x, v = {}, {}, {}
if #users > 0 then
  redis.call('ZREM', KEYS[1], unpack(users))
  local flying, n = {}, 0
  for i, user in ipairs(users) do
    if states[i] or links[i] then
      n = n + 1
      u[n], x[n], v[n] = user, links[i], states[i]
      flying[2 * n - 1], flying[2 * n] = user, id
    end
  end
  if #flying > 0 then redis.call('HSET', KEYS[3], unpack(flying)) end
end
local events = {}
if nevents > 0 then
  events = redis.call('LRANGE', KEYS[7], 0, nevents - 1)
  redis.call('LTRIM', KEYS[7], nevents, -1)
end
if #u == 0 and #events == 0 then return {'empty'} end
local body = cjson.encode({id = id, u = u, x = x, v = v, events = events, attempts = 0, created = now})
redis.call('HSET', KEYS[4], id, body)
redis.call('ZADD', KEYS[5], now + lease, id)
redis.call('HSET', KEYS[9], id, ARGV[8])
return {'new', id, body}
