-- The state of one LINE user, as stored (shared/state.py is the Python side, and
-- the contract tests run both). Needs lhash.
-- Where: a user id "U" + 32 lowercase hex digits lives in bucket <P>:state:<b> under
-- its 16 bytes (linear hashing, meta <P>:state:meta); any other id in <P>:state:x
-- under the id itself. The buckets stay listpacks (hash-max-listpack-entries 512 by
-- default): about 30 B per user.
-- Value, packed: a version made by shared/events.py make_version (36 digits:
-- timestamp 13, arrival ms 13, stream seq and index 10) with its state S/U as
-- 6 bytes big-endian (timestamp * 8 + flags: 1 = S, 2 = arrival before timestamp,
-- 4 = dirty: waiting in the outbox, its bucket listed in <P>:outbox:buckets),
-- then varint |arrival - timestamp|, then varint seq*10000+index
-- (7 bits a byte, low first, high bit = more). Any other version: byte 255, the
-- state, the version as given. The old layout (<P>:state HASH user -> version..state)
-- is read as a fallback while it exists (shared/migrate.py moves it).
local function st_varint(x)
  if x < 128 then return schar(x) end
  if x < 16384 then return schar(x % 128 + 128, (x - x % 128) / 128) end
  local out = {}
  while x >= 128 do
    local low = x % 128
    out[#out + 1] = low + 128
    x = (x - low) / 128
  end
  out[#out + 1] = x
  return string.char(unpack(out))
end
local function st_unvarint(s, i)
  local x, mul = 0, 1
  while true do
    local byte = sbyte(s, i)
    i = i + 1
    if byte < 128 then return x + byte * mul, i end
    x = x + (byte - 128) * mul
    mul = mul * 128
  end
end
-- (timestamp, arrival, seq*10000+index) of a standard version, or nil.
local function st_parts(version)
  if #version ~= 36 or sfind(version, '[^0-9]') then return nil end
  return tonumber(ssub(version, 1, 13)), tonumber(ssub(version, 14, 26)), tonumber(ssub(version, 27, 36))
end
local function st_pack(version, state, dirty)
  local ts, arr, si = st_parts(version)
  if not ts then return string.char(255) .. state .. version end
  local d, flags = arr - ts, (state == 'S') and 1 or 0
  if d < 0 then d = -d flags = flags + 2 end
  if dirty then flags = flags + 4 end
  local h = ts * 8 + flags
  local lo = h % 16777216
  local hi = (h - lo) / 16777216
  return schar(floor(hi / 65536), floor(hi / 256) % 256, hi % 256, floor(lo / 65536), floor(lo / 256) % 256, lo % 256) .. st_varint(d) .. st_varint(si)
end
-- state and, for a standard version, its parts (timestamp, arrival, seq*10000+index) of a stored
-- value, with no version formatted; for a version of another form: state, nil, nil, nil, version.
local function st_fields(v)
  if sbyte(v, 1) == 255 then return ssub(v, 2, 2), nil, nil, nil, ssub(v, 3) end
  local b1, b2, b3, b4, b5, b6 = sbyte(v, 1, 6)
  local h = ((b1 * 256 + b2) * 256 + b3) * 16777216 + (b4 * 256 + b5) * 256 + b6
  local flags = h % 8
  local ts = (h - flags) / 8
  local d, i = st_unvarint(v, 7)
  local si = st_unvarint(v, i)
  if flags % 4 >= 2 then d = -d end
  return (flags % 2 == 1) and 'S' or 'U', ts, ts + d, si
end
-- version, state, and for a standard version its parts (timestamp, arrival, seq*10000+index).
local function st_unpack(v)
  local state, ts, arr, si, version = st_fields(v)
  if ts then version = sformat('%013d%013d%010d', ts, arr, si) end
  return version, state, ts, arr, si
end
-- Can the value carry the dirty flag (a packed version)? Is it set?
local function st_packed(v)
  return sbyte(v, 1) ~= 255
end
local function st_is_dirty(v)
  return sbyte(v, 1) ~= 255 and sbyte(v, 6) % 8 >= 4
end
-- The dirty users of a bucket read whole (all: HGETALL's reply): their fields, values and values
-- with the flag cleared go to fs, vs and cs after n, up to upto of them. Returns the new n and
-- how many dirty users all holds.
local function st_scan_dirty(all, fs, vs, cs, n, upto)
  local dirty = 0
  for i = 2, #all, 2 do
    local v = all[i]
    local c1, c2, c3, c4, c5, c6 = sbyte(v, 1, 6)
    if c1 ~= 255 and c6 % 8 >= 4 then
      dirty = dirty + 1
      if n < upto then
        n = n + 1
        fs[n], vs[n], cs[n] = all[i - 1], v, schar(c1, c2, c3, c4, c5, c6 - 4) .. ssub(v, 7)
      end
    end
  end
  return n, dirty
end
local function st_clean(v)
  return ssub(v, 1, 5) .. schar(sbyte(v, 6) - 4) .. ssub(v, 7)
end
local function st_dirty(v)
  return ssub(v, 1, 5) .. schar(sbyte(v, 6) + 4) .. ssub(v, 7)
end
-- Is version (as given, or its parts if known) newer than the stored value cur? And cur's state.
local function st_newer(version, cur, ts, arr, si)
  local cstate, cts, carr, csi, cv = st_fields(cur)
  if not ts then ts, arr, si = st_parts(version) end
  if ts and cts then
    if ts ~= cts then return ts > cts, cstate end
    if arr ~= carr then return arr > carr, cstate end
    return si > csi, cstate
  end
  if ts then version = sformat('%013d%013d%010d', ts, arr, si) end
  if cts then cv = sformat('%013d%013d%010d', cts, carr, csi) end
  return version > cv, cstate
end
-- The state store of one script run: st = st_open(prefix, buckets, now) with KEYS' {P}:state
-- and {P}:outbox:buckets (ZSET bucket -> first-dirty ms), the time (ms) a bucket becomes dirty.
-- The format of a bucket's key (string.format, with the bucket number).
local function st_keyfmt(prefix)
  return (string.gsub(prefix, '%%', '%%%%')) .. ':%d'
end
local function st_open(prefix, dirty_buckets, now)
  local m = redis.call('HMGET', prefix .. ':meta', 'buckets', 'entries', 'dirty')
  local n = tonumber(m[1]) or 1
  return {prefix = prefix, kfmt = st_keyfmt(prefix), n = n, p = lh_pow(n), entries = tonumber(m[2]) or 0, dirty = tonumber(m[3]) or 0,
          added = 0, dirtied = 0, listed = {}, tolist = {}, legacy = redis.call('EXISTS', prefix) == 1, buckets = dirty_buckets, now = now, nows = sformat('%d', now)}
end
-- key and field where user lives, and its bucket (nil: in <P>:state:x).
local function st_where(st, user)
  if #user == 33 and sbyte(user, 1) == 85 and not sfind(user, '[^0-9a-f]', 2) then
    local f = lh_hex2bin(string.sub(user, 2))
    local b = lh_bucket(lh_hash(f), st.n, st.p)
    return sformat(st.kfmt, b), f, b
  end
  return st.prefix .. ':x', user, nil
end
-- Where the caller computed the field (shared/state.py field: '' for an id of another form).
local function st_at(st, user, f)
  if f == '' then return st.prefix .. ':x', user, nil end
  local b = lh_bucket(lh_hash(f), st.n, st.p)
  return sformat(st.kfmt, b), f, b
end
-- The stored value at key, f of user (packed), or false; moves it from the old layout if it is there.
local function st_get(st, key, f, user)
  local cur = redis.call('HGET', key, f)
  if not cur and st.legacy then
    local old = redis.call('HGET', st.prefix, user)
    if old then
      cur = st_pack(string.sub(old, 1, -2), string.sub(old, -1))
      redis.call('HSET', key, f, cur)
      redis.call('HDEL', st.prefix, user)
      st.added = st.added + 1
    end
  end
  return cur
end
-- The stored value of user (packed), or false, and where: key, field, bucket (nil: <P>:state:x).
-- f: its field if the caller knows it (else computed here).
local function st_read(st, user, f)
  local key, b
  if f then key, f, b = st_at(st, user, f) else key, f, b = st_where(st, user) end
  return st_get(st, key, f, user), key, f, b
end
local function st_write(st, key, f, value, new)
  redis.call('HSET', key, f, value)
  if new then st.added = st.added + 1 end
end
-- Mark a stored user dirty: in its bucket's value if it has one (value as written, packed with
-- dirty set by the caller; the bucket is listed by st_close), else listed alone in ready
-- (ZSET user -> ms). bs: b as a decimal string, if the caller has it. b may be that string itself:
-- a bucket listed under both forms is named twice in one ZADD NX, which adds it once.
local function st_mark(st, b, was_dirty, user, ready, bs)
  if b then
    if not was_dirty then st.dirtied = st.dirtied + 1 end
    if not st.listed[b] then
      st.listed[b] = true
      local n = #st.tolist
      st.tolist[n + 1] = st.nows
      st.tolist[n + 2] = bs or sformat('%d', b)
    end
  else
    redis.call('ZADD', ready, 'NX', st.nows, user)
  end
end
-- The ordering rule, written once (apply_events.lua, apply_states.lua): a user with stored
-- value cur (false: none) in bucket b (nil: <P>:state:x) goes to the state and version of
-- value (the new value packed; dirty: whether it carries the dirty flag already; state,
-- version and its parts ts, arr, si as the caller has them, or state nil: read from value when
-- needed). Returns 0 (stale: nothing to write), or 1 (applied: the state changed) or 2
-- (unchanged: a newer version of the same state), the value to write, the bucket to list it in
-- (nil: listed alone) and whether it was dirty. Changes nothing: st_effects does.
local function st_next(cur, b, value, dirty, state, version, ts, arr, si)
  local was_dirty, changed = false, true
  if cur then
    if not state then state, ts, arr, si, version = st_fields(value) end
    local newer, cur_state = st_newer(version, cur, ts, arr, si)
    if not newer then return 0 end
    was_dirty = st_is_dirty(cur)
    changed = cur_state ~= state
  end
  if not st_packed(value) then
    b = nil
  else
    local want = b ~= nil and (changed or was_dirty)
    if want ~= dirty then
      if want then value = st_dirty(value) else value = st_clean(value) end
    end
  end
  return changed and 1 or 2, value, b, was_dirty
end
-- The outbox side of st_next's answer (ready: KEYS' {P}:outbox:ready; user may be nil when the
-- value written is packed and b is not nil): a dirty user whose value cannot carry the flag is
-- listed alone; a changed user is marked dirty.
local function st_effects(st, user, outcome, b, was_dirty, written, ready)
  if was_dirty and not st_packed(written) then
    st.dirtied = st.dirtied - 1
    redis.call('ZADD', ready, 'NX', st.nows, user)
    was_dirty = false
  end
  if outcome == 1 then st_mark(st, b, was_dirty, user, ready) end
end
-- A user with no stored value, at key/f in bucket b (not nil), takes a packed value with the dirty
-- flag as given: what st_next(false, b, value, true) answers (new is changed, changed is dirty).
-- HSETNX writes it unless a value is stored; then nothing is written and false is returned.
-- bs: b as a decimal string, if the caller has it.
local function st_insert(st, key, f, value, b, bs)
  if redis.call('HSETNX', key, f, value) == 0 then return false end
  st.added = st.added + 1
  st_mark(st, b, false, nil, nil, bs)
  return true
end
-- st_next and st_effects: returns the outcome and the value to write (none if stale).
local function st_set(st, user, cur, b, value, dirty, ready, state, version, ts, arr, si)
  local outcome, out, mb, was_dirty = st_next(cur, b, value, dirty, state, version, ts, arr, si)
  if outcome ~= 0 then st_effects(st, user, outcome, mb, was_dirty, out, ready) end
  return outcome, out
end
-- A split moved dirty users: their new bucket waits in the outbox as long as the old one.
local function st_moved(st)
  return function(old, new, moved)
    for i = 2, #moved, 2 do
      if st_is_dirty(moved[i]) then
        local since = redis.call('ZSCORE', st.buckets, old) or st.now
        redis.call('ZADD', st.buckets, 'NX', since, new)
        return
      end
    end
  end
end
-- Persist the counts and grow the buckets (toward st.reserve buckets, if the caller set it: a first sync
-- sized ahead): once per script run, after the writes.
local function st_close(st)
  if #st.tolist > 0 then
    redis.call('ZADD', st.buckets, 'NX', unpack(st.tolist))
    st.tolist = {}
  end
  if st.added == 0 and st.dirtied == 0 then return end
  st.entries = st.entries + st.added
  st.dirty = st.dirty + st.dirtied
  st.n = lh_grow(st.prefix, st.n, st.entries, nil, st_moved(st), st.reserve)
  redis.call('HSET', st.prefix .. ':meta', 'buckets', st.n, 'entries', st.entries, 'dirty', st.dirty)
  st.added = 0
  st.dirtied = 0
end
