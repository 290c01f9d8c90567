-- Linear hashing over many small hashes (shared/buckets.py is the Python side).
-- A family of buckets <prefix>:<b> (b = 0 .. N-1) grows one bucket at a time:
-- when the family holds more than LH_LOAD entries per bucket, bucket s = N - 2^L
-- (2^L <= N < 2^(L+1)) is split and the entries whose hash has bit L set move to
-- the new bucket N. No stop-the-world rehash; a walk over buckets 0..N-1 in order
-- sees an entry at least once (entries only move to the new last bucket).
-- Fields are raw bytes whose last 4 bytes are the entry's hash (uniform: random
-- or sequential ids). The count N and the number of entries live in <meta>
-- (HASH: buckets, entries).
-- No string literal in a library holds two dashes: scripts.py joins it on one line.
local LH_LOAD = 48
-- At most this many splits, moving at most about this many entries, per script run: a family that
-- must grow a lot at once (made at a larger load, or sized ahead: target) grows over the next
-- writes instead of blocking Redis (empty buckets split cheaply, full ones do not).
local LH_MAX_SPLITS, LH_MAX_MOVES = 1024, 4096
local sbyte, schar, ssub, sfind, sformat, floor = string.byte, string.char, string.sub, string.find, string.format, math.floor
local function lh_hash(field)
  local a, b, c, d = sbyte(field, -4, -1)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function lh_pow(n)
  local p = 1
  while p * 2 <= n do p = p * 2 end
  return p
end
-- p: lh_pow(n), if the caller has it.
local function lh_bucket(h, n, p)
  p = p or lh_pow(n)
  local b = h % (2 * p)
  if b >= n then b = h % p end
  return b
end
local function lh_meta(meta)
  local m = redis.call('HMGET', meta, 'buckets', 'entries')
  return tonumber(m[1]) or 1, tonumber(m[2]) or 0
end
-- Split buckets until the load is under LH_LOAD and, if target is given, there are target buckets
-- (within LH_MAX_SPLITS / LH_MAX_MOVES); returns the new bucket count.
-- expire_ms (or nil): the time to live set on a bucket made here; on_move (or nil):
-- called with (old bucket, new bucket, moved field/value list) after each split that moves.
local function lh_grow(prefix, n, entries, expire_ms, on_move, target)
  local last, moves = n + LH_MAX_SPLITS, 0
  target = target or 0
  while (entries > LH_LOAD * n or n < target) and n < last and moves < LH_MAX_MOVES do
    local p = lh_pow(n)
    local s = n - p
    local old = prefix .. ':' .. s
    local new = prefix .. ':' .. n
    local all = redis.call('HGETALL', old)
    local moved, gone = {}, {}
    for i = 1, #all, 2 do
      if lh_hash(all[i]) % (2 * p) == n then
        moved[#moved + 1] = all[i]
        moved[#moved + 1] = all[i + 1]
        gone[#gone + 1] = all[i]
      end
    end
    if #gone > 0 then
      moves = moves + #gone
      redis.call('HDEL', old, unpack(gone))
      redis.call('HSET', new, unpack(moved))
      if expire_ms then redis.call('PEXPIRE', new, expire_ms) end
      if on_move then on_move(s, n, moved) end
    end
    n = n + 1
  end
  return n
end
-- Buckets computed by a caller for `hint` buckets that may be wrong now that there are n: a bucket b
-- is still right unless lo <= b < hi (the buckets split since, in the same round) or b >= n; a
-- hint from another round (or none: 0) leaves every bucket in doubt.
local function lh_doubt(hint, n)
  if hint == n then return 0, 0 end
  local p = lh_pow(n)
  if hint < n and hint >= p then return hint - p, n - p end
  return 0, math.huge
end
-- 32 lowercase hex digits to 16 bytes, and back.
local function lh_hex2bin(hex)
  local a, b, c, d = tonumber(ssub(hex, 1, 8), 16), tonumber(ssub(hex, 9, 16), 16), tonumber(ssub(hex, 17, 24), 16), tonumber(ssub(hex, 25, 32), 16)
  local a3, b3, c3, d3 = a % 256, b % 256, c % 256, d % 256
  a, b, c, d = (a - a3) / 256, (b - b3) / 256, (c - c3) / 256, (d - d3) / 256
  local a2, b2, c2, d2 = a % 256, b % 256, c % 256, d % 256
  a, b, c, d = (a - a2) / 256, (b - b2) / 256, (c - c2) / 256, (d - d2) / 256
  local a1, b1, c1, d1 = a % 256, b % 256, c % 256, d % 256
  return schar((a - a1) / 256, a1, a2, a3, (b - b1) / 256, b1, b2, b3, (c - c1) / 256, c1, c2, c3, (d - d1) / 256, d1, d2, d3)
end
-- Hex digits of each byte value, made on first use (a literal: no string.format per script run).
-- lead (or nil): put before the digits, in the same concatenation.
local LH_HEX = nil
local function lh_bin2hex(bin, lead)
  if #bin ~= 16 then return (lead or '') .. string.format(string.rep('%02x', #bin), string.byte(bin, 1, -1)) end
  if not LH_HEX then
    LH_HEX = {[0] = '00', '01', '02', '03', '04', '05', '06', '07', '08', '09', '0a', '0b', '0c', '0d', '0e', '0f', '10', '11', '12', '13', '14', '15', '16', '17', '18', '19', '1a', '1b', '1c', '1d', '1e', '1f', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '2a', '2b', '2c', '2d', '2e', '2f', '30', '31', '32', '33', '34', '35', '36', '37', '38', '39', '3a', '3b', '3c', '3d', '3e', '3f', '40', '41', '42', '43', '44', '45', '46', '47', '48', '49', '4a', '4b', '4c', '4d', '4e', '4f', '50', '51', '52', '53', '54', '55', '56', '57', '58', '59', '5a', '5b', '5c', '5d', '5e', '5f', '60', '61', '62', '63', '64', '65', '66', '67', '68', '69', '6a', '6b', '6c', '6d', '6e', '6f', '70', '71', '72', '73', '74', '75', '76', '77', '78', '79', '7a', '7b', '7c', '7d', '7e', '7f', '80', '81', '82', '83', '84', '85', '86', '87', '88', '89', '8a', '8b', '8c', '8d', '8e', '8f', '90', '91', '92', '93', '94', '95', '96', '97', '98', '99', '9a', '9b', '9c', '9d', '9e', '9f', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'aa', 'ab', 'ac', 'ad', 'ae', 'af', 'b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'b9', 'ba', 'bb', 'bc', 'bd', 'be', 'bf', 'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'ca', 'cb', 'cc', 'cd', 'ce', 'cf', 'd0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9', 'da', 'db', 'dc', 'dd', 'de', 'df', 'e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9', 'ea', 'eb', 'ec', 'ed', 'ee', 'ef', 'f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'f9', 'fa', 'fb', 'fc', 'fd', 'fe', 'ff'}
  end
  local h = LH_HEX
  local a1, a2, a3, a4, b1, b2, b3, b4, c1, c2, c3, c4, d1, d2, d3, d4 = sbyte(bin, 1, 16)
  return (lead or '') .. h[a1] .. h[a2] .. h[a3] .. h[a4] .. h[b1] .. h[b2] .. h[b3] .. h[b4] .. h[c1] .. h[c2] .. h[c3] .. h[c4] .. h[d1] .. h[d2] .. h[d3] .. h[d4]
end
