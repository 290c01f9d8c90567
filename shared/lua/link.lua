-- Link or unlink an external_id and a LINE user id, keeping both directions of
-- the index consistent, and queue the LINE user so its current state reaches
-- every linked profile.
--
-- KEYS[1] {P}:links:line     HASH LINE user id -> newline-separated external_ids
-- KEYS[2] {P}:links:ext      HASH external_id -> LINE user id
-- KEYS[3] {P}:outbox:ready   ZSET LINE user id -> first-dirty ms
-- ARGV[1] 'link' | 'unlink'   ARGV[2] external_id   ARGV[3] LINE user id ('' for unlink)   ARGV[4] now ms
-- Returns 1 if anything changed, 0 if it was already so.
local function remove(list, item)
  local out = {}
  for x in string.gmatch(list or '', '[^\n]+') do
    if x ~= item then out[#out + 1] = x end
  end
  return out
end

local function store(user, items)
  if #items == 0 then
    redis.call('HDEL', KEYS[1], user)
  else
    redis.call('HSET', KEYS[1], user, table.concat(items, '\n'))
  end
end

local ext, user, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local old = redis.call('HGET', KEYS[2], ext)
if ARGV[1] == 'unlink' then
  if not old then return 0 end
  redis.call('HDEL', KEYS[2], ext)
  store(old, remove(redis.call('HGET', KEYS[1], old), ext))
  return 1
end
if old == user then return 0 end
if old then
  store(old, remove(redis.call('HGET', KEYS[1], old), ext))
end
redis.call('HSET', KEYS[2], ext, user)
local items = remove(redis.call('HGET', KEYS[1], user), ext)
items[#items + 1] = ext
store(user, items)
redis.call('ZADD', KEYS[3], 'NX', now, user)
return 1
