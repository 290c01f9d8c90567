-- Remembered webhookEventIds (shared/dedupe.py is the Python side). Needs lhash.
-- An id is kept as 16 bytes: a ULID (26 characters of Crockford base32, as LINE's
-- webhookEventIds are) decoded, any other id the first 16 bytes of its SHA-1.
-- Time is cut in windows of the dedupe TTL; window t keeps its ids in buckets
-- <P>:dedupe:<t>:<b> (linear hashing, meta <P>:dedupe:<t>), field = the 16 bytes,
-- value empty, all expiring as a whole at the end of window t + 1 (as the caller.s clock says: PEXPIRE). An id counts as
-- seen if window t or t - 1 holds it: it is remembered for one to two TTLs.
local DD_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
local DD_DIGIT = {}
for i = 1, 32 do DD_DIGIT[string.byte(DD_ALPHABET, i)] = i - 1 end
local function dd_base32(id, from, to)
  local v = 0
  for i = from, to do v = v * 32 + DD_DIGIT[string.byte(id, i)] end
  return v
end
local function dd_bytes(v, n)
  local out = {}
  for i = n, 1, -1 do
    out[i] = v % 256
    v = (v - out[i]) / 256
  end
  return string.char(unpack(out))
end
local function dd_key(id)
  if #id == 26 and not string.find(id, '[^0-9A-HJKMNP-TV-Z]') and string.byte(id, 1) <= 55 then
    return dd_bytes(dd_base32(id, 1, 10), 6) .. dd_bytes(dd_base32(id, 11, 18), 5) .. dd_bytes(dd_base32(id, 19, 26), 5)
  end
  return lh_hex2bin(string.sub(redis.sha1hex(id), 1, 32))
end
-- The dedupe store of one script run: prefix = KEYS' {P}:dedupe, now and window in ms.
-- cfmt, pfmt: the formats of a bucket's key (string.format with its number, not a number
-- concatenated: that formats it as a float); p, pp: lh_pow of the bucket counts.
local function dd_open(prefix, now, window)
  local t = math.floor(now / window)
  local cur = prefix .. ':' .. t
  local prev = prefix .. ':' .. (t - 1)
  local n, entries = lh_meta(cur)
  local pn = lh_meta(prev)
  return {cur = cur, prev = prev, n = n, p = lh_pow(n), pn = pn, pp = lh_pow(pn), entries = entries, added = 0,
          cfmt = (string.gsub(cur, '%%', '%%%%')) .. ':%d', pfmt = (string.gsub(prev, '%%', '%%%%')) .. ':%d',
          expire_ms = (t + 2) * window - now}
end
-- true if id is new (and now remembered), false if it was seen. f: its 16 bytes, if the
-- caller has them (shared/dedupe.py id_bytes).
local function dd_remember(dd, id, f)
  f = f or dd_key(id)
  local h = lh_hash(f)
  if redis.call('HEXISTS', sformat(dd.pfmt, lh_bucket(h, dd.pn, dd.pp)), f) == 1 then return false end
  if redis.call('HSETNX', sformat(dd.cfmt, lh_bucket(h, dd.n, dd.p)), f, '') == 0 then return false end
  dd.added = dd.added + 1
  return true
end
-- A window's buckets are made by splits (which set their expiry), all but bucket 0: it
-- gets its expiry with the window's first id. (A bucket a split emptied would come back
-- without one: every one of its ~50 to ~100 entries would have to move, a 2^-48 chance.)
local function dd_close(dd)
  if dd.added == 0 then return end
  if dd.entries == 0 then redis.call('PEXPIRE', dd.cur .. ':0', dd.expire_ms) end
  dd.entries = dd.entries + dd.added
  dd.n = lh_grow(dd.cur, dd.n, dd.entries, dd.expire_ms)
  dd.p = lh_pow(dd.n)
  redis.call('HSET', dd.cur, 'buckets', dd.n, 'entries', dd.entries)
  redis.call('PEXPIRE', dd.cur, dd.expire_ms)
  dd.added = 0
end
