"""Remembered event ids: the 16 bytes an id is kept as, and the windows' buckets, against a real Redis."""

import hashlib
import random

from shared import dedupe, state
from shared.keys import Keys
from shared.state import Change


def reference_id_bytes(event_id: str) -> bytes:
    """The definition: a ULID's 26 Crockford digits as one 128-bit number, else SHA-1's first 16 bytes."""
    if dedupe.ULID.fullmatch(event_id):
        v = 0
        for ch in event_id:
            v = v * 32 + dedupe.CROCKFORD.index(ch)
        return v.to_bytes(16, "big")
    return hashlib.sha1(event_id.encode()).digest()[:16]


def test_id_bytes_decodes_every_ulid_digit_as_defined():
    rnd = random.Random(7)
    ulids = [rnd.choice("01234567") + "".join(rnd.choice(dedupe.CROCKFORD) for _ in range(25)) for _ in range(2000)]
    edges = ["0" * 26, "7" + "Z" * 25, "01ARZ3NDEKTSV4RRFFQ69G5FAV"]
    others = ["01arz3ndektsv4rrffq69g5fav", "8" + "0" * 25, "01ARZ3NDEKTSV4RRFFQ69G5FAI", "", "x", "é" * 26]
    for e in ulids + edges + others:
        assert dedupe.id_bytes(e) == reference_id_bytes(e), e
    assert dedupe.id_bytes("7" + "Z" * 25) == b"\xff" * 16


def test_ids_under_a_prefix_with_percent_signs_are_remembered_across_splits(r):
    keys = Keys("50%off")
    ids = [f"01J{i:023d}" for i in range(1500)] + [f"other-{i}" for i in range(300)]
    for i in range(0, len(ids), 300):
        state.apply(r, keys, [Change("U1", "", "", e) for e in ids[i:i + 300]], now_ms=1000, dedupe_ttl=3600)
    assert int(r.hget(keys.dedupe_window(0), "buckets")) > 4
    assert all(dedupe.remembered(r, keys, e, now_ms=1000, ttl_seconds=3600) for e in ids[::7])
    res = state.apply(r, keys, [Change("U1", "", "", e) for e in ids], now_ms=3600 * 1000 + 1, dedupe_ttl=3600)
    assert res.duplicates == len(ids)  # the previous window, split into other bucket counts, knows them all


def test_an_id_is_applied_once_with_its_state_and_forward(r, keys):
    u = "U" + "ab" * 16
    first = state.apply(r, keys, [Change(u, "0" * 36, "S", "01J" + "0" * 23, forward='{"a":1}')],
                        now_ms=1000, dedupe_ttl=3600)
    again = state.apply(r, keys, [Change(u, "1" * 36, "U", "01J" + "0" * 23, forward='{"a":1}')],
                        now_ms=2000, dedupe_ttl=3600)
    assert (first.applied, first.forwarded, again.duplicates, again.applied, again.forwarded) == (1, 1, 1, 0, 0)
    assert state.get(r, keys, u) == ("0" * 36, "S") and r.llen(keys.outbox_events) == 1
