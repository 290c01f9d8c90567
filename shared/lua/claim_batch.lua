#!lua flags=allow-oom
--#include lhash
--#include state
-- Take the next batch to deliver: an overdue batch (crashed sender or a retry
-- whose time has come) first, else a new batch from the outbox.
--
-- KEYS[1] {P}:outbox:ready    ZSET  user listed alone -> first-dirty ms (oldest first)
-- KEYS[2] {P}:state           prefix of the state buckets (lib/state.lua; read: always the newest)
-- KEYS[3] {P}:outbox:inflight HASH  user id of another form (and, from a release before KEYS[11],
--                                   a LINE user id) -> batch id; read only while it exists
-- KEYS[4] {P}:batches         HASH  batch id -> JSON
-- KEYS[5] {P}:batches:due     ZSET  batch id -> lease expiry / retry time (ms)
-- KEYS[6] {P}:links:line      HASH  user -> newline-separated external ids
-- KEYS[7] {P}:outbox:events   LIST  forwarded custom events (JSON with field q = enqueue ms)
-- KEYS[8] {P}:batches:retry   ZSET  batch id -> retry time (ms), for batches waiting after a failure
-- KEYS[9] {P}:batches:owner   HASH  batch id -> token of the sender holding its lease
-- KEYS[10] {P}:outbox:buckets ZSET  state bucket holding dirty users -> first-dirty ms (lib/state.lua)
-- KEYS[11] {P}:outbox:flying  HASH  LINE user's state field (16 bytes, lib/state.lua) -> batch id
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
-- Candidates come from two lists, merged by first-dirty time: users listed alone
-- (KEYS[1]) and state buckets holding dirty users (KEYS[10], lib/state.lua: one HGETALL
-- gives a bucket's dirty users and their states). Redis is asked per batch and per
-- bucket, not per user. At most four batches' worth of candidates are looked at.
local limit = 4 * max_objects
local st = st_open(KEYS[2], KEYS[10], now)
local any_links = redis.call('EXISTS', KEYS[6]) == 1
-- Without links a user makes at most one object: when all that is listed (dirty users in buckets,
-- users alone, events) cannot fill a batch and the oldest listed has not waited the flush delay, no
-- batch is made whatever is read: wait, without reading a bucket. (The oldest listed is at most the
-- oldest a gather would pick: the wait is never longer.)
if not any_links then
  local nlisted = st.dirty + redis.call('ZCARD', KEYS[1]) + redis.call('LLEN', KEYS[7])
  if nlisted < max_objects then
    local oldest = nil
    for _, z in ipairs({KEYS[1], KEYS[10]}) do
      local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      if first[2] and (oldest == nil or tonumber(first[2]) < oldest) then oldest = tonumber(first[2]) end
    end
    if redis.call('LLEN', KEYS[7]) > 0 then
      local ok, first = pcall(cjson.decode, redis.call('LINDEX', KEYS[7], 0))
      local q = ok and type(first) == 'table' and tonumber(first.q) or 0
      if oldest == nil or q < oldest then oldest = q end
    end
    if oldest ~= nil and oldest + delay > now then return {'wait', oldest + delay - now} end
  end
end
local id = ARGV[4]
-- Per state bucket key met (read whole, or holding a user listed alone): {b = its number as
-- listed (read only), score = its first-dirty ms (read only), dirty = its dirty users (read
-- only), c = fields and cleaned values to write (one pair per dirty user taken), nc = #c}.
local buckets = {}
local function bucket(key)
  local rec = buckets[key]
  if not rec then
    rec = {c = {}, nc = 0}
    buckets[key] = rec
  end
  return rec
end
-- Per candidate: its field (a LINE user's 16 bytes, or an id of another form as given), stored
-- value (false: none) and bucket record; for those read from a bucket, cc: the value with the
-- dirty flag cleared; for those listed alone, cu: the id, ca: the first-dirty
-- ms, co: true for an id of another form. In flight: a LINE user in KEYS[11] under its field,
-- other ids in KEYS[3]. No user id is formatted unless KEYS[3] exists (batches of an earlier
-- release, or ids of another form, in flight) or someone has links (KEYS[6] is by user id).
local cf, cv, cr, cc, cu, ca, co, nc = {}, {}, {}, {}, {}, {}, {}, 0
local legacy = redis.call('EXISTS', KEYS[3]) == 1
local alone = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
-- Listed buckets are read 4 first (a batch of a first sync takes one or two; each score read is
-- a number formatted), then 16 at a time (users dirty here and there: a bucket or so each).
local ai, bfrom, bpage, bi, blist, bmore = 1, 0, 4, 1, {}, true
local function next_page()
  blist = redis.call('ZRANGE', KEYS[10], bfrom, bfrom + bpage - 1, 'WITHSCORES')
  bmore = #blist == 2 * bpage
  bfrom, bpage, bi = bfrom + bpage, 16, 1
end
next_page()
-- Add candidates, oldest first, until there are upto (or none left).
local function gather(upto)
  while nc < upto do
    local as = alone[ai + 1] and tonumber(alone[ai + 1])
    local bs = blist[bi + 1] and tonumber(blist[bi + 1])
    if not as and not bs then return end
    if as and (not bs or as <= bs) then
      local user = alone[ai]
      ai = ai + 2
      local cur, key, f, b = st_read(st, user)
      nc = nc + 1
      cf[nc], cv[nc], cr[nc], cu[nc], ca[nc], co[nc] = f, cur or false, bucket(key), user, as, b == nil
    else
      local b = blist[bi]
      bi = bi + 2
      if bi > #blist and bmore then next_page() end
      local key = st.prefix .. ':' .. b
      local rec = bucket(key)
      rec.b, rec.score = b, bs
      local from, dirty = nc + 1, 0
      nc, dirty = st_scan_dirty(redis.call('HGETALL', key), cf, cv, cc, nc, upto)
      rec.dirty = (rec.dirty or 0) + dirty
      for j = from, nc do cr[j] = rec end
    end
  end
end

-- Picked users go straight into the batch's arrays (f, x, v: those with a state or links; the
-- others just leave the outbox; o: which of f are ids of another form), with what taking them
-- changes, written only if a batch is made: gone (listed alone: they leave the list), each
-- bucket's c (fields and values with the dirty flag cleared), flying and held (in flight, LINE
-- users by field and other ids).
local f, x, v, o, nitems, no = {}, {}, {}, {}, 0, 0
local flying, nflying, held, nheld = {}, 0, {}, 0
local objects, npicked = 0, 0
-- A user is met twice only if listed alone too (alone and in its bucket): the same value, cleaned once.
local picked = alone[1] and {} or nil
local gone, ngone, ncleaned = {}, 0, 0
local oldest = nil
local looked, full = 0, false
while not full and looked < limit do
  gather(math.min(limit, looked + max_objects))
  if nc == looked then break end
  if legacy or any_links then
    for j = looked + 1, nc do
      if not cu[j] then cu[j] = lh_bin2hex(cf[j], 'U') end
    end
  end
  -- (an id of another form that happens to be some LINE user's 16 bytes waits for that batch too)
  local inflight = redis.call('HMGET', KEYS[11], unpack(cf, looked + 1, nc))
  local before = legacy and redis.call('HMGET', KEYS[3], unpack(cu, looked + 1, nc)) or nil
  local linked = any_links and redis.call('HMGET', KEYS[6], unpack(cu, looked + 1, nc)) or nil
  for j = looked + 1, nc do
    if not inflight[j - looked] and not (before and before[j - looked]) then
      local key, listed, other = cf[j], ca[j], co[j]
      if other then key = '\0' .. key end  -- (picked: never mistaken for a LINE user's field)
      if picked and picked[key] then
        if listed then ngone = ngone + 1 gone[ngone] = cu[j] end
      else
        -- Its stored value as is (packed, dirty flag and all): shared/batch.py decodes it, so
        -- no version is formatted here.
        local cur = cv[j]
        -- The objects it makes (shared/payload.py objects_for): its alias profile if it has a
        -- state, and each linked profile. None: nothing to send, it just leaves the outbox.
        local cost = cur and 1 or 0
        local lk = linked and linked[j - looked]
        if lk then
          for _ in string.gmatch(lk, '[^\n]+') do cost = cost + 1 end
        end
        if objects + cost > max_objects and objects > 0 then full = true break end
        if picked then picked[key] = true end
        npicked = npicked + 1
        local rec, since = cr[j], listed
        if listed then
          ngone = ngone + 1
          gone[ngone] = cu[j]
        else
          since = rec.score
        end
        if not listed or (cur and st_is_dirty(cur)) then  -- read from a bucket: dirty
          local n = rec.nc + 2
          rec.c[n - 1], rec.c[n], rec.nc = cf[j], cc[j] or st_clean(cur), n
          ncleaned = ncleaned + 1
        end
        if oldest == nil or since < oldest then oldest = since end
        if cur or lk then
          nitems = nitems + 1
          f[nitems], v[nitems] = cf[j], cur
          if linked then x[nitems] = lk or false end
          if other then
            no = no + 1
            o[no] = nitems - 1
            held[nheld + 1], held[nheld + 2], nheld = cf[j], id, nheld + 2
          else
            flying[nflying + 1], flying[nflying + 2], nflying = cf[j], id, nflying + 2
          end
        end
        objects = objects + cost
        if objects >= max_objects then full = true break end
      end
    end
  end
  looked = nc
end
-- Buckets listed with no dirty user left (all taken earlier, by this batch if made, or moved by
-- a split) leave the list.
local function forget_clean_buckets(made)
  local clean, n = {}, 0
  for _, rec in pairs(buckets) do
    if rec.dirty and rec.dirty - (made and rec.nc / 2 or 0) == 0 then
      n = n + 1
      clean[n] = rec.b
    end
  end
  if n > 0 then redis.call('ZREM', KEYS[10], unpack(clean)) end
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
if npicked == 0 and nevents == 0 then
  forget_clean_buckets(false)
  st_close(st)
  return {'empty'}
end
if objects + nevents < max_objects and oldest + delay > now then
  forget_clean_buckets(false)
  st_close(st)
  return {'wait', oldest + delay - now}
end

if npicked > 0 then
  if ngone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  for key, rec in pairs(buckets) do
    if rec.nc > 0 then redis.call('HSET', key, unpack(rec.c, 1, rec.nc)) end
  end
  st.dirtied = st.dirtied - ncleaned
  if nflying > 0 then redis.call('HSET', KEYS[11], unpack(flying, 1, nflying)) end
  if nheld > 0 then redis.call('HSET', KEYS[3], unpack(held, 1, nheld)) end
end
forget_clean_buckets(npicked > 0)
st_close(st)
local events = {}
if nevents > 0 then
  events = redis.call('LRANGE', KEYS[7], 0, nevents - 1)
  redis.call('LTRIM', KEYS[7], nevents, -1)
end
if nitems == 0 and #events == 0 then return {'empty'} end
-- The batch value: its layout is shared/batch.py's (the codec, round-trip tested with this
-- script): u = 2 (this layout), parallel arrays of users (f: a LINE user's field, or as given
-- when listed in o, 0-based), their links (x, left out when nobody has links) and their stored
-- state values (p, packed as lib/state.lua keeps them; false: none).
local body = cjson.encode({id = id, u = 2, f = f, o = no > 0 and o or nil, x = any_links and x or nil, p = v,
                           events = events, attempts = 0, created = now})
redis.call('HSET', KEYS[4], id, body)
redis.call('ZADD', KEYS[5], now + lease, id)
redis.call('HSET', KEYS[9], id, ARGV[8])
return {'new', id, body}
