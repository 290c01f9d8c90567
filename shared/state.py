"""Per-user subscription state: newest event wins, applied atomically with dedupe.

Both the webhook consumer and the resync write state through :func:`apply`,
so the ordering rule lives in one place (shared/lua/lib/state.lua ``st_set``,
run by shared/lua/apply_events.lua, and by shared/lua/apply_states.lua for
changes that are states alone, as a resync page's are: two values per user
instead of six, one write per bucket). Every
read goes through :func:`get`, :func:`count` and :func:`scan`: the layout is
this module's and shared/lua/lib/state.lua's alone (tests/shared/test_state.py
round-trips values through the real scripts).

Layout (shared/keys.py): a LINE user id (``U`` + 32 lowercase hex digits) is
kept in bucket ``{P}:state:<b>`` (shared/buckets.py) under its 16 bytes; any
other id in ``{P}:state:x`` under the id. The value packs a version made by
:func:`shared.events.make_version` and the state (:func:`pack`): 6 bytes of
``timestamp * 8 + flags`` (1 = subscribed, 2 = arrival before the timestamp, 4
= dirty: waiting in the outbox, shared/outbox.py), then varints of ``|arrival - timestamp|`` and ``seq * 10000 +
index`` (7 bits a byte, low first, high bit = more): 9 to 13 bytes instead of
37. Any other version is kept as given after a byte 255 and the state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import redis

from shared import buckets, dedupe
from shared.events import make_version, version_timestamp
from shared.keys import Keys
from shared.scripts import script

LINE_USER = re.compile(r"U[0-9a-f]{32}")
_RAW = 255
DIRTY = 4  # the flag of a user waiting in the outbox (shared/outbox.py)
@dataclass(frozen=True)
class Change:
    """One event's effect: a state for ``user`` at ``version`` and/or an event to forward."""

    user: str
    version: str
    state: str = ""             # S, U, or '' for none
    event_id: str | None = None  # dedupe key; None = not deduped by id
    forward: str = ""           # JSON of a custom event to forward, '' = none


@dataclass(frozen=True)
class Applied:
    applied: int
    duplicates: int
    stale: int
    unchanged: int
    forwarded: int


def apply(r: redis.Redis | redis.client.Pipeline, keys: Keys, changes: Sequence[Change], *, now_ms: int,
          dedupe_ttl: int, ack_ids: Iterable[str] = (), group: str = "",
          counters: Mapping[str, int] | None = None) -> Applied | None:
    """Apply ``changes`` in order, ack ``ack_ids`` on the webhook stream, bump ``counters``: all or nothing.

    An event id is remembered for one to two ``dedupe_ttl`` (shared/dedupe.py).
    With a pipeline the script is only queued and None is returned; its result
    comes with the pipeline's ``execute()`` (see :func:`applied`).
    """
    acks = list(ack_ids)
    if not acks and not counters and all(c.state and not c.event_id and not c.forward for c in changes):
        return _apply_states(r, keys, changes, now_ms=now_ms)
    args: list[str | int | bytes] = []
    for c in changes:
        f = field(c.user)
        args += [f or "", "" if f else c.user, pack(c.version, c.state) if c.state else "",
                 dedupe.id_bytes(c.event_id) if c.event_id else "", c.event_id or "", c.forward]
    stats = [x for kv in (counters or {}).items() for x in kv]
    res = script(r, "apply_events")(
        keys=[keys.state, keys.outbox_ready, keys.outbox_events, keys.stats, keys.webhooks, keys.dedupe,
              keys.seen_prefix, keys.migrate, keys.outbox_buckets],
        args=[now_ms, dedupe_ttl, group, len(changes), len(acks), len(stats) // 2, *args, *acks, *stats],
    )
    if isinstance(r, redis.client.Pipeline):
        return None
    return applied(res)


def _apply_states(r: redis.Redis | redis.client.Pipeline, keys: Keys, changes: Sequence[Change], *,
                  now_ms: int) -> Applied | None:
    """States alone: shared/lua/apply_states.lua, the same rule with 3 values per user (no buckets computed)."""
    line: list[bytes | str] = []
    other: list[str | bytes] = []
    for c in changes:
        f = field(c.user)
        if f is None:
            other += [c.user, pack(c.version, c.state, True)]
        else:
            line += [f, pack(c.version, c.state, True), ""]
    return _run_apply_states(r, keys, now_ms, 0, 0, line, other)


def apply_page(r: redis.Redis | redis.client.Pipeline, keys: Keys, users: Sequence[str], st: str, *,
               timestamp: int, now_ms: int, bucket_count: int = 0, reserve: int = 0) -> Applied | None:
    """``users`` (a resync page, in order) to state ``st``, the i-th at version
    ``make_version(timestamp, now_ms, 0, i)`` (index mod 10,000): what :func:`apply` does with those
    changes, with the page's values made from one prefix and, given ``bucket_count`` (as
    :func:`bucket_count_after` a page before; 0: unknown), each user's bucket computed here (the script recomputes
    those of a bucket split since). ``reserve``: how many users the state is about to hold (a first
    sync's estimate; 0: unknown): its buckets are made ahead, while nearly empty (:func:`reserve_buckets`).
    Queued only, like :func:`apply`, when ``r`` is a pipeline."""
    parts = _parts(make_version(timestamp, now_ms, 0, 0))
    assert parts is not None
    prefix = _pack_parts(*parts, st, True)[:-1]  # the index's varint (0) left off
    fields: list[bytes] = []
    values: list[bytes] = []
    other: list[str | bytes] = []
    match, fromhex, small = LINE_USER.fullmatch, bytes.fromhex, _SMALL_VARINTS
    for i, u in enumerate(users):
        value = prefix + small[i % 10000]
        if match(u):
            fields.append(fromhex(u[1:]))
            values.append(value)
        else:
            other += [u, value]
    where = [str(b) for b in buckets.buckets_of(fields, bucket_count)] if bucket_count else [""] * len(fields)
    line = [x for triple in zip(fields, values, where) for x in triple]
    return _run_apply_states(r, keys, now_ms, bucket_count, reserve_buckets(reserve), line, other)


def reserve_buckets(users: int) -> int:
    """The buckets ``users`` users need (0 for none)."""
    return -(-users // buckets.LOAD) if users > 0 else 0


def _run_apply_states(r, keys: Keys, now_ms: int, bucket_count: int, reserve: int, line: list,
                      other: list) -> Applied | None:
    res = script(r, "apply_states")(
        keys=[keys.state, keys.outbox_ready, keys.stats, keys.outbox_buckets],
        args=[now_ms, len(line) // 3, bucket_count, reserve, *line, *other],
    )
    if isinstance(r, redis.client.Pipeline):
        return None
    return applied(res)


def bucket_count_after(res) -> int:
    """The bucket count after an :func:`apply_page` (from its reply): what the next page can compute for."""
    return int(res[5])


def applied(res) -> Applied:
    """The script's reply as an Applied."""
    return Applied(*(int(x) for x in res[:5]))


# ----------------------------------------------------------------------------- the stored value

def _varint_slow(x: int) -> bytes:
    out = bytearray()
    while x >= 128:
        out.append(x % 128 + 128)
        x //= 128
    out.append(x)
    return bytes(out)


# Varints of the small numbers most versions carry (arrival - timestamp in ms, seq*10000+index).
_SMALL_VARINTS = [_varint_slow(x) for x in range(1 << 14)]


def _varint(x: int) -> bytes:
    return _SMALL_VARINTS[x] if x < 16384 else _varint_slow(x)


def _unvarint(b: bytes, i: int) -> tuple[int, int]:
    x, mul = 0, 1
    while True:
        byte = b[i]
        i += 1
        if byte < 128:
            return x + byte * mul, i
        x += (byte - 128) * mul
        mul *= 128


def _parts(version: str) -> tuple[int, int, int] | None:
    """(timestamp, arrival, seq * 10000 + index) of a version made by make_version, else None."""
    if len(version) != 36 or not version.isascii() or not version.isdigit():
        return None
    return int(version[:13]), int(version[13:26]), int(version[26:])


def pack(version: str, state: str, dirty: bool = False) -> bytes:
    """The stored value of ``state`` (S/U) at ``version`` (what lib/state.lua st_pack writes);
    ``dirty``: waiting in the outbox (a version of another form cannot carry it)."""
    parts = _parts(version)
    if parts is None:
        return bytes([_RAW]) + state.encode() + version.encode()
    return _pack_parts(*parts, state, dirty)


def _pack_parts(ts: int, arr: int, si: int, state: str, dirty: bool = False) -> bytes:
    d, flags = arr - ts, 1 if state == "S" else 0
    if d < 0:
        d, flags = -d, flags + 2
    if dirty:
        flags += DIRTY
    return (ts * 8 + flags).to_bytes(6, "big") + _varint(d) + _varint(si)


def unpack(value: bytes) -> tuple[str, str]:
    """(version, state) of a stored value."""
    if value[0] == _RAW:
        return value[2:].decode(), value[1:2].decode()
    h = int.from_bytes(value[:6], "big")
    flags, ts = h % 8, h // 8
    d, i = _unvarint(value, 6)
    si, _ = _unvarint(value, i)
    arr = ts - d if flags & 2 else ts + d
    return f"{ts:013d}{arr:013d}{si:010d}", "S" if flags & 1 else "U"


def is_dirty(value: bytes) -> bool:
    """Is the user of this stored value waiting in the outbox (its bucket listed in {P}:outbox:buckets)?"""
    return value[0] != _RAW and bool(value[5] & DIRTY)


def dirty_many(r: redis.Redis, keys: Keys, users: Sequence[str]) -> list[bool]:
    """Whether each of ``users`` carries the dirty flag (listed alone in {P}:outbox:ready is apart)."""
    if not users:
        return []
    res = script(r, "get_state")(keys=[keys.state], args=list(users))
    return [bool(value) and is_dirty(value) for value in res[0::2]]


def dirty_count(r: redis.Redis, keys: Keys) -> int:
    """How many users carry the dirty flag."""
    return int(r.hget(keys.state_meta, "dirty") or 0)


def field(user: str) -> bytes | None:
    """The bucket field of a LINE user id (its 16 bytes), or None for an id of another form."""
    return bytes.fromhex(user[1:]) if LINE_USER.fullmatch(user) else None


def user_of(f: bytes) -> str:
    return "U" + f.hex()


# ----------------------------------------------------------------------------- reads

def get(r: redis.Redis, keys: Keys, user: str) -> tuple[str, str] | None:
    """(version, state) of ``user``, or None."""
    return get_many(r, keys, [user])[0]


def get_many(r: redis.Redis, keys: Keys, users: Sequence[str]) -> list[tuple[str, str] | None]:
    """(version, state) or None of each of ``users``, read at one moment."""
    if not users:
        return []
    res = script(r, "get_state")(keys=[keys.state], args=list(users))
    out: list[tuple[str, str] | None] = []
    for value, old in zip(res[0::2], res[1::2]):
        if value:
            out.append(unpack(value))
        elif old:
            old = old.decode()
            out.append((old[:-1], old[-1]))
        else:
            out.append(None)
    return out


def count(r: redis.Redis, keys: Keys) -> int:
    """How many users linesync holds a state for."""
    p = r.pipeline(transaction=False)
    p.hget(keys.state_meta, "entries")
    p.hlen(keys.state)  # the old layout, until migrated
    entries, old = p.execute()
    return int(entries or 0) + int(old)


def scan(r: redis.Redis, keys: Keys, cursor: str = "0", *, count: int = 1000) -> tuple[str, list[tuple[str, str, str]]]:
    """One step over every held state: (next cursor, [(user, version, state), ...]).

    Start with cursor "0"; a returned "0" means the walk is done. Like HSCAN,
    a user present for the whole walk is returned at least once; the cursor
    is an opaque string the caller keeps (a resync run stores it): ``b<n>``
    (the buckets, from bucket n), ``x<c>`` (``{P}:state:x``, HSCAN cursor c),
    ``o<c>`` (the old layout's hash, while it exists).
    """
    cursor = cursor or "0"
    # "0", or a cursor kept from the layout before buckets (a bare number): from the start.
    phase, pos = ("b", 0) if cursor[0].isdigit() else (cursor[0], int(cursor[1:]))
    out: list[tuple[str, str, str]] = []
    if phase == "b":
        n = int(r.hget(keys.state_meta, "buckets") or 1)
        upto = min(n, pos + max(1, count // buckets.LOAD))
        p = r.pipeline(transaction=False)
        for b in range(pos, upto):
            p.hgetall(keys.state_bucket(b))
        for entries in p.execute():
            out += [(user_of(f), *unpack(v)) for f, v in entries.items()]
        return (f"b{upto}" if upto < n else "x0"), out
    if phase == "x":
        nxt, entries = r.hscan(keys.state_x, pos, count=count)
        out = [(u.decode(), *unpack(v)) for u, v in entries.items()]
        return (f"x{nxt}" if nxt else "o0"), out
    nxt, entries = r.hscan(keys.state, pos, count=count)
    for u, v in entries.items():
        v = v.decode()
        out.append((u.decode(), v[:-1], v[-1]))
    return (f"o{nxt}" if nxt else "0"), out


def effective_ms(version: str) -> int:
    """The effective time (epoch ms) a version was stamped with: the event's, or a resync run's start."""
    return version_timestamp(version)


def mark_dirty(r: redis.Redis, keys: Keys, users: Iterable[str], *, now_ms: int) -> int:
    """Queue ``users`` for (re)sending their current state (links, DLQ replay): listed alone."""
    users = list(users)
    if not users:
        return 0
    return r.zadd(keys.outbox_ready, {u: now_ms for u in users}, nx=True)
