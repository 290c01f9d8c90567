"""Moving the layout before buckets (one state hash, a key per event id) at start, against a real Redis."""

import hashlib

from shared import dedupe, migrate, state
from shared.events import make_version
from shared.state import Change

TTL = 3600


def user(i):
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


def old_layout(r, keys, n_users=2500, n_ids=1200):
    p = r.pipeline(transaction=False)
    for i in range(n_users):
        p.hset(keys.state, user(i), make_version(100 + i, 100 + i, 0, i % 10) + "SU"[i % 2])
    p.hset(keys.state, "odd-id", make_version(5, 5, 0, 0) + "S")
    for i in range(n_ids):
        p.set(keys.seen_prefix + f":01J{i:023d}", "1", ex=TTL)
    p.set(keys.seen_prefix + ":accountLink:e1", "1", ex=TTL)
    p.execute()


def every_state(r, keys):
    out, cursor = [], "0"
    while True:
        cursor, entries = state.scan(r, keys, cursor, count=500)
        out += entries
        if cursor == "0":
            return out


def test_a_killed_migration_resumes_and_moves_everything_once(r, keys):
    old_layout(r, keys)
    # Written by the new code before the move reached them: a newer one stays, an older one loses.
    state.apply(r, keys, [Change(user(1), make_version(10**9, 10**9, 0, 0), "S"),
                          Change("odd-id", make_version(1, 1, 0, 0), "U")], now_ms=1000, dedupe_ttl=TTL)
    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL, chunk=100, max_chunks=8) == "stopped"
    assert 0 < r.hlen(keys.state) < 2500
    # Mid-way, everything still reads and dedupes as before.
    assert state.get(r, keys, user(2000)) == (make_version(2100, 2100, 0, 0), "S")
    assert state.count(r, keys) == 2501
    assert state.apply(r, keys, [Change(user(7), make_version(1, 1, 0, 0), "S", f"01J{1100:023d}")],
                       now_ms=1000, dedupe_ttl=TTL).duplicates == 1

    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL, chunk=100) == "done"
    assert not r.exists(keys.state) and not migrate.pending(r, keys)
    got = every_state(r, keys)
    assert len(got) == len({u for u, _, _ in got}) == state.count(r, keys) == 2501
    by_user = {u: (v, s) for u, v, s in got}
    assert by_user[user(1)] == (make_version(10**9, 10**9, 0, 0), "S")
    assert by_user[user(2)] == (make_version(102, 102, 0, 2), "S")
    assert by_user["odd-id"] == (make_version(5, 5, 0, 0), "S")
    assert r.keys(keys.seen_prefix + ":*") == [(keys.seen_prefix + ":accountLink:e1").encode()]
    assert all(dedupe.remembered(r, keys, f"01J{i:023d}", now_ms=1000, ttl_seconds=TTL) for i in range(1200))
    assert dedupe.size(r, keys, now_ms=1000, ttl_seconds=TTL) == 1200
    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL) == "done"


def test_one_process_migrates_at_a_time(r, keys):
    old_layout(r, keys, n_users=10, n_ids=10)
    r.set(keys.migrate_lease, "someone-else", px=60_000)
    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL) == "busy"
    assert r.hlen(keys.state) == 11
    r.delete(keys.migrate_lease)
    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL) == "done" and not r.exists(keys.migrate_lease)


def test_a_fresh_redis_has_nothing_to_move(r, keys):
    assert migrate.run(r, keys, now_ms=1000, dedupe_ttl=TTL) == "done"
    assert not migrate.pending(r, keys)
