"""The newer-wins rule and dedupe, against a real Redis."""

import itertools
import random

from shared import state
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
    assert r.ttl(keys.seen("e1")) > 0


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
