"""The newer-wins rule and dedupe, against a real Redis."""

import hashlib
import itertools
import random
from pathlib import Path

import pytest

from shared import buckets, dedupe, scripts, state
from shared.events import make_version
from shared.state import Change


def apply(r, keys, *changes, now=1000, **kw):
    return state.apply(r, keys, list(changes), now_ms=now, dedupe_ttl=3600, **kw)


def v(ts, arrival=1, idx=0):
    return make_version(ts, arrival, 0, idx)


def test_newer_event_wins_and_marks_outbox(r, keys):
    res = apply(r, keys, Change("U1", v(10), "S", "e1"), Change("U1", v(20), "U", "e2"))
    assert (res.applied, res.stale) == (2, 0)
    assert state.get(r, keys, "U1") == (v(20), "U")
    assert r.zscore(keys.outbox_ready, "U1") == 1000


def test_older_event_never_overwrites(r, keys):
    apply(r, keys, Change("U1", v(20), "U", "e2"))
    res = apply(r, keys, Change("U1", v(10), "S", "e1"))
    assert res.stale == 1
    assert state.get(r, keys, "U1")[1] == "U"


def test_equal_timestamps_ordered_by_arrival(r, keys):
    apply(r, keys, Change("U1", v(10, arrival=5, idx=1), "U", "b"))
    apply(r, keys, Change("U1", v(10, arrival=5, idx=0), "S", "a"))  # earlier position in the same body
    assert state.get(r, keys, "U1")[1] == "U"
    apply(r, keys, Change("U1", v(10, arrival=6), "S", "c"))           # later body
    assert state.get(r, keys, "U1")[1] == "S"


def test_redelivered_event_changes_nothing(r, keys):
    apply(r, keys, Change("U1", v(10), "S", "e1"))
    r.delete(keys.outbox_ready)
    res = apply(r, keys, Change("U1", v(10, arrival=9), "S", "e1"))  # LINE redelivery: new arrival, same id
    assert res.duplicates == 1
    assert r.zcard(keys.outbox_ready) == 0
    assert dedupe.remembered(r, keys, "e1", now_ms=1000, ttl_seconds=3600)


def test_same_state_newer_version_does_not_resend(r, keys):
    apply(r, keys, Change("U1", v(10), "S", "e1"))
    r.delete(keys.outbox_ready)
    res = apply(r, keys, Change("U1", v(11), "S", "e2"))
    assert res.unchanged == 1 and r.zcard(keys.outbox_ready) == 0
    assert state.get(r, keys, "U1")[0] == v(11)


def test_any_order_ends_in_newest_state(r, keys):
    rng = random.Random(3)
    events = [Change("U1", v(ts, arrival=ts), "S" if ts % 2 else "U", f"e{ts}") for ts in range(1, 9)]
    for perm in itertools.islice(itertools.permutations(events), 0, 200, 7):
        r.flushall()
        order = list(perm)
        rng.shuffle(order)
        for c in order + order[:3]:  # with redeliveries
            apply(r, keys, c)
        assert state.get(r, keys, "U1") == (v(8, arrival=8), "U")


def test_ack_and_counters_commit_with_the_changes(r, keys):
    from shared import webhook_queue
    from shared.keys import STREAM_GROUP
    webhook_queue.ensure_group(r, keys)
    eid = webhook_queue.enqueue(r, keys, b"{}")
    r.xreadgroup(STREAM_GROUP, "c", {keys.webhooks: ">"})
    apply(r, keys, Change("U1", v(1), "S", None), ack_ids=[eid], group=STREAM_GROUP, counters={"bodies": 1})
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0
    assert r.hget(keys.stats, "bodies") == b"1"
    assert r.hget(keys.stats, "transitions") == b"1"


def test_forwarded_events_are_deduped_too(r, keys):
    apply(r, keys, Change("U1", v(1), "", "m1", forward='{"name":"x","q":1}'))
    apply(r, keys, Change("U1", v(1), "", "m1", forward='{"name":"x","q":1}'))
    assert r.llen(keys.outbox_events) == 1


def test_apply_can_be_queued_in_a_pipeline(r, keys):
    p = r.pipeline(transaction=True)
    assert state.apply(p, keys, [Change("U1", v(1), "S", "p1")], now_ms=1, dedupe_ttl=60) is None
    p.hset(keys.stats, "other", 1)
    res, _ = p.execute()
    assert state.applied(res).applied == 1 and state.get(r, keys, "U1")[1] == "S"


def test_scan_walks_every_state_once_and_count_agrees(r, keys):
    changes = [state.Change(f"U{i:032x}", f"1700000000000{i:04d}", "S" if i % 3 else "U") for i in range(2500)]
    state.apply(r, keys, changes, now_ms=1, dedupe_ttl=60)
    seen: dict[str, tuple[str, str]] = {}
    cursor = "0"
    while True:
        cursor, entries = state.scan(r, keys, cursor, count=300)
        for user, version, st in entries:
            seen[user] = (version, st)
        if cursor == "0":
            break
    assert len(seen) == state.count(r, keys) == 2500
    assert seen["U" + "0" * 31 + "1"] == ("17000000000000001", "S")
    assert seen["U" + "0" * 32] == ("17000000000000000", "U")


# ----------------------------------------------------------------------------- the layout's contract

def line_user(i):
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


def stored(r, keys, user):
    """The raw value where the Python side says ``user`` lives."""
    f = state.field(user)
    if f is None:
        return r.hget(keys.state_x, user)
    n = int(r.hget(keys.state_meta, "buckets") or 1)
    return r.hget(keys.state_bucket(buckets.bucket(buckets.field_hash(f), n)), f)


VERSIONS = [make_version(0, 0, 0, 0), make_version(1700000000123, 1700000000456, 3, 7),
            make_version(10**13 - 1, 10**13 - 1, 999999, 9999), make_version(20, 1, 0, 0),  # arrival < timestamp
            make_version(1700000000000, 1700000009999, 0, 9999), "1700000000000001", "x"]


def test_lua_and_python_pack_the_same_bytes_and_read_them_back(r, keys):
    users = [line_user(i) for i in range(len(VERSIONS))] + [f"u-{i}" for i in range(len(VERSIONS))]
    changes = [Change(u, VERSIONS[i % len(VERSIONS)], "SU"[i % 2]) for i, u in enumerate(users)]
    state.apply(r, keys, changes, now_ms=1, dedupe_ttl=60)
    for c in changes:  # a LINE user's value carries the outbox's dirty flag; others are listed alone
        dirty = state.field(c.user) is not None and state.pack(c.version, c.state)[0] != 255
        assert stored(r, keys, c.user) == state.pack(c.version, c.state, dirty)
        assert state.is_dirty(stored(r, keys, c.user)) == dirty
        assert state.unpack(state.pack(c.version, c.state)) == (c.version, c.state)
        assert state.get(r, keys, c.user) == (c.version, c.state)
    assert len(state.pack(make_version(1700000000123, 1700000000456, 0, 0), "S")) == 9


def test_the_newer_wins_rule_holds_across_packed_and_plain_versions(r, keys):
    u = line_user(1)
    for ts, arr, seq, idx in [(5, 9, 0, 1), (5, 9, 0, 0), (5, 8, 9, 9), (4, 99, 0, 0)]:
        apply(r, keys, Change(u, make_version(ts, arr, seq, idx), "U"))
    assert state.get(r, keys, u) == (make_version(5, 9, 0, 1), "U")
    apply(r, keys, Change(u, make_version(5, 9, 1, 0), "S"))
    assert state.get(r, keys, u) == (make_version(5, 9, 1, 0), "S")


def test_buckets_grow_as_users_come_and_stay_listpacks(r, keys):
    users = [line_user(i) for i in range(20 * buckets.LOAD)]
    for i in range(0, len(users), 500):
        state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S") for u in users[i:i + 500]],
                    now_ms=1, dedupe_ttl=60)
    n = int(r.hget(keys.state_meta, "buckets"))
    assert n == 20 and state.count(r, keys) == len(users)
    sizes = [r.hlen(keys.state_bucket(b)) for b in range(n)]
    assert sum(sizes) == len(users) and max(sizes) <= 2.5 * buckets.LOAD
    assert all(r.object("encoding", keys.state_bucket(b)) == b"listpack" for b in range(n))
    assert all(stored(r, keys, u) for u in users)  # where the Python side looks
    assert [s for s in state.get_many(r, keys, users[:50])] == [(make_version(1, 1, 0, 0), "S")] * 50


def test_a_family_that_must_grow_a_lot_grows_over_several_writes(r, keys):
    # Buckets made for a larger load (an older release's ~96, or a count off by far) split at most
    # 1,024 per script run (fewer if they move over ~4,096 users), so one write never blocks Redis
    # for the whole rehash.
    users = [line_user(i) for i in range(3000)]
    for i in range(0, len(users), 100):
        state.apply(r, keys, [Change(u, v(1), "S") for u in users[i:i + 100]], now_ms=1, dedupe_ttl=60)
    counts = [int(r.hget(keys.state_meta, "buckets"))]
    assert counts == [3000 // buckets.LOAD + 1]
    r.hset(keys.state_meta, "entries", 2000 * buckets.LOAD)  # as if far more users were held
    for i in range(12):
        state.apply(r, keys, [Change(line_user(5000 + i), v(1), "S")], now_ms=1, dedupe_ttl=60)
        counts.append(int(r.hget(keys.state_meta, "buckets")))
    steps = [b - a for a, b in zip(counts, counts[1:]) if a < 2001]
    assert len(steps) > 2 and all(0 < step <= 1024 for step in steps) and counts[-1] == 2001
    assert all(stored(r, keys, u) for u in users)


def test_scan_meets_every_user_while_buckets_split(r, keys):
    first = [line_user(i) for i in range(3000)]
    state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S") for u in first], now_ms=1, dedupe_ttl=60)
    seen, cursor, more = set(), "0", iter(range(3000, 9000, 500))
    while True:
        cursor, entries = state.scan(r, keys, cursor, count=200)
        seen |= {u for u, _, _ in entries}
        batch = next(more, None)
        if batch is not None:  # splits happen between the steps
            state.apply(r, keys, [Change(line_user(i), make_version(1, 1, 0, 0), "S") for i in range(batch, batch + 500)],
                        now_ms=1, dedupe_ttl=60)
        if cursor == "0":
            break
    assert set(first) <= seen


def test_event_ids_are_kept_as_16_bytes_in_windows(r, keys):
    ulid, other = "01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid"
    assert dedupe.id_bytes(ulid).hex() == "01563e3ab5d3d6764c61efb99302bd5b"
    apply(r, keys, Change("U1", v(1), "", ulid), Change("U1", v(1), "", other), now=1000)
    fields = set(r.hkeys(keys.dedupe_bucket(0, 0)))
    assert fields == {dedupe.id_bytes(ulid), dedupe.id_bytes(other)}
    assert 2 * 3600 * 1000 - 61_000 < r.pttl(keys.dedupe_bucket(0, 0)) <= 2 * 3600 * 1000 - 1000  # end of next window
    for now in (1000, 3600 * 1000 + 5):  # the next window still knows it
        assert apply(r, keys, Change("U1", v(1), "", ulid), now=now).duplicates == 1
    r.delete(keys.dedupe_window(0), keys.dedupe_bucket(0, 0))  # what the expiry does
    assert apply(r, keys, Change("U1", v(1), "", ulid), now=2 * 3600 * 1000).duplicates == 0


def test_many_event_ids_split_their_window_and_are_all_remembered(r, keys):
    ids = [f"01J{i:023d}" for i in range(3000)]
    for i in range(0, 3000, 500):
        apply(r, keys, *[Change("U1", v(1), "", e) for e in ids[i:i + 500]])
    assert int(r.hget(keys.dedupe_window(0), "buckets")) > 1
    assert all(dedupe.remembered(r, keys, e, now_ms=1000, ttl_seconds=3600) for e in ids[::97])
    assert apply(r, keys, *[Change("U1", v(1), "", e) for e in ids]).duplicates == 3000


def test_library_lines_keep_the_scripts_line_numbers():
    for name in ("apply_events", "apply_states", "claim_batch", "get_state"):
        src = (Path(scripts.__file__).with_name("lua") / f"{name}.lua").read_text()
        assert len(scripts._source(name).split("\n")) == len(src.split("\n"))
        assert "--#include" not in scripts._source(name)


def test_lua_packs_what_python_packs_when_it_moves_the_old_layout(r, keys):
    from shared import migrate
    users = [line_user(i) for i in range(len(VERSIONS))] + [f"u-{i}" for i in range(len(VERSIONS))]
    olds = {u: (VERSIONS[i % len(VERSIONS)], "SU"[i % 2]) for i, u in enumerate(users)}
    r.hset(keys.state, mapping={u: v + s for u, (v, s) in olds.items()})
    assert migrate.run(r, keys, now_ms=1, dedupe_ttl=60) == "done"  # lib/state.lua st_pack, not Python's
    for u, (v_, s) in olds.items():
        assert stored(r, keys, u) == state.pack(v_, s)
        assert state.get(r, keys, u) == (v_, s)


def test_a_plain_stored_version_still_orders_against_a_packed_one(r, keys):
    u = line_user(9)
    apply(r, keys, Change(u, "1700000000000000000", "S"))           # kept as given (not make_version's form)
    apply(r, keys, Change(u, make_version(1700000000000, 1, 0, 0), "U"))  # "1700000000000000..." sorts after
    assert state.get(r, keys, u) == (make_version(1700000000000, 1, 0, 0), "U")
    apply(r, keys, Change(u, "1", "S"))                                # older as a string: stale
    assert state.get(r, keys, u)[1] == "U"


def _everything(r, keys):
    """Every key's content, as comparable values (the stats without the probe counter)."""
    out = {}
    for k in sorted(r.keys("*")):
        t = r.type(k).decode()
        if t == "hash":
            out[k] = r.hgetall(k)
        elif t == "zset":
            out[k] = r.zrange(k, 0, -1, withscores=True)
        else:
            out[k] = r.dump(k)
    out.get(keys.stats.encode(), {}).pop(b"probe", None)
    return out


@pytest.mark.parametrize("old_layout", [True, False])
def test_states_alone_take_the_same_path_as_events(r, keys, old_layout):
    # A resync page's changes (states, no event id) go through apply_states.lua; with a counter
    # they go through apply_events.lua. Both apply lib/state.lua st_set: same keys, same values,
    # same outbox, same replies, over splits, duplicates in one call, the old layout moved on
    # read, ids of another form and versions of another form.
    rnd = random.Random(16)
    users = [line_user(i) for i in range(400)] + [f"u-{i}" for i in range(8)]
    old = {u: VERSIONS[1] + "U" for u in users[::37]} if old_layout else {}
    versions = VERSIONS + [v(rnd.randrange(1, 50), rnd.randrange(1, 9), rnd.randrange(0, 3)) for _ in range(30)]
    pages = [[Change(rnd.choice(users), rnd.choice(versions), rnd.choice("SU"), None) for _ in range(150)]
             for _ in range(14)]
    results = []
    for counters in (None, {"probe": 1}):
        r.flushdb()
        if old:
            r.hset(keys.state, mapping=old)
        got = [state.apply(r, keys, page, now_ms=1000 + i, dedupe_ttl=60, counters=counters)
               for i, page in enumerate(pages)]
        results.append((got, _everything(r, keys)))
    (fast, fast_keys), (slow, slow_keys) = results
    assert int(r.hget(keys.state_meta, "buckets")) > 2 and r.zcard(keys.outbox_buckets) > 2
    assert fast == slow and fast_keys == slow_keys


@pytest.mark.parametrize("hint", ["exact", "stale", "unknown", "wrong"])
def test_a_page_writes_what_its_changes_would(r, keys, hint):
    # apply_page (a resync page: one version base, each user's bucket computed by the caller for a
    # bucket count) writes exactly what apply() writes for the same changes, whether that count is
    # right, some splits behind (as a page packed while the one before was applied), unknown or wrong;
    # over new users, known ones (newer and older), both states and ids of another form.
    rnd = random.Random(48)
    users = [line_user(i) for i in range(3000)] + ["u-x", "u-y", "u-z"]
    pages = [rnd.sample(users, 700) for _ in range(7)]
    results = []
    for way in ("changes", "page"):
        r.flushdb()
        before = 0
        got = []
        for i, page in enumerate(pages):
            st, ts = "SU"[i % 2], (100 + i) if i != 4 else 50  # page 4: older than what it finds
            if way == "changes":
                changes = [Change(u, make_version(ts, 1000 + i, 0, j), st) for j, u in enumerate(page)]
                got.append(state.apply(r, keys, changes, now_ms=1000 + i, dedupe_ttl=60))
                continue
            n = int(r.hget(keys.state_meta, "buckets") or 1)
            count = {"exact": n, "stale": before or n, "unknown": 0, "wrong": n + 1000}[hint]
            before = n
            got.append(state.apply_page(r, keys, page, st, timestamp=ts, now_ms=1000 + i, bucket_count=count))
        results.append((got, _everything(r, keys)))
    (by_changes, keys_changes), (by_page, keys_page) = results
    assert int(r.hget(keys.state_meta, "buckets")) > 40
    assert by_page == by_changes and keys_page == keys_changes


def test_states_alone_are_one_script_call(r, keys, monkeypatch):
    called = []
    real = state.script
    monkeypatch.setattr(state, "script", lambda client, name: called.append(name) or real(client, name))
    apply(r, keys, Change(line_user(1), v(1), "S", None), Change("u-1", v(1), "U", None))
    apply(r, keys, Change(line_user(1), v(2), "U", "e1"))
    assert called == ["apply_states", "apply_events"]


def test_a_prefix_with_percent_signs_still_finds_its_buckets(r):
    from shared.keys import Keys
    keys = Keys("50%off")
    users = [line_user(i) for i in range(300)]
    state.apply(r, keys, [Change(u, v(1), "S", None) for u in users], now_ms=1, dedupe_ttl=60)
    assert int(r.hget(keys.state_meta, "buckets")) > 1
    assert r.exists(keys.state_bucket(1)) and state.get_many(r, keys, users) == [(v(1), "S")] * 300
