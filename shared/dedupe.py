"""Remembered webhookEventIds: the Python side of shared/lua/lib/dedupe.lua.

An event is applied once per ``webhookEventId`` (shared/lua/apply_events.lua
remembers the id in the same atomic step that applies it). An id is kept as
16 bytes: a ULID (26 characters of Crockford base32: LINE's webhookEventIds)
decoded, any other id the first 16 bytes of its SHA-1 (a collision between
two ids is a 2**-128 chance). Time is cut in windows of the dedupe TTL
(``LINESYNC_DEDUPE_TTL_SECONDS``); window t holds its ids in buckets
``{P}:dedupe:<t>:<b>`` (shared/buckets.py linear hashing, field = the 16
bytes, value empty: ~22 B an id instead of ~134 B for a key each), and every key
of window t expires as a whole at the end of window t+1. An id counts as seen
when window t or t-1 holds it, so an id is remembered for one to two TTLs,
never less than one.
"""

from __future__ import annotations

import hashlib
import re

import redis

from shared import buckets
from shared.keys import Keys

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
# Crockford's digits as int(..., 32)'s (0-9a-v): a ULID decoded in C, not a loop per character.
_TO_BASE32 = str.maketrans(CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


def id_bytes(event_id: str) -> bytes:
    """The 16 bytes an event id is remembered as (lib/dedupe.lua dd_key)."""
    if ULID.fullmatch(event_id):
        return int(event_id.translate(_TO_BASE32), 32).to_bytes(16, "big")
    return hashlib.sha1(event_id.encode()).digest()[:16]


def window(now_ms: int, ttl_seconds: int) -> int:
    return now_ms // (ttl_seconds * 1000)


def remembered(r: redis.Redis, keys: Keys, event_id: str, *, now_ms: int, ttl_seconds: int) -> bool:
    """Whether ``event_id`` counts as seen at ``now_ms`` (or in the layout before windows)."""
    f = id_bytes(event_id)
    t = window(now_ms, ttl_seconds)
    for w in (t, t - 1):
        n = int(r.hget(keys.dedupe_window(w), "buckets") or 1)
        if r.hexists(keys.dedupe_bucket(w, buckets.bucket(buckets.field_hash(f), n)), f):
            return True
    return bool(r.exists(keys.seen_prefix + ":" + event_id))


def size(r: redis.Redis, keys: Keys, *, now_ms: int, ttl_seconds: int) -> int:
    """How many event ids are remembered (the current and the previous window)."""
    t = window(now_ms, ttl_seconds)
    return sum(int(r.hget(keys.dedupe_window(w), "entries") or 0) for w in (t, t - 1))
