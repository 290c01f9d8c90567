"""Coalescing, batching and in-flight exclusivity of the outbox, on a real Redis."""

from shared import outbox, state
from shared.events import make_version
from shared.outbox import Batch, Wait
from shared.state import Change


def put(r, keys, user, ts, st, now=1000):
    state.apply(r, keys, [Change(user, make_version(ts, 1, 0, 0), st, None)], now_ms=now, dedupe_ttl=60)


def claim(r, keys, now, size=75, delay=500, **kw):
    return outbox.claim(r, keys, now_ms=now, max_objects=size, flush_delay_ms=delay, **kw)


def test_partial_batch_waits_for_the_flush_delay(r, keys):
    put(r, keys, "U1", 1, "S", now=1000)
    assert claim(r, keys, 1200) == Wait(300, "delay")
    b = claim(r, keys, 1500)
    assert isinstance(b, Batch) and b.users == ["U1"]


def test_full_batch_goes_at_once(r, keys):
    for i in range(10):
        put(r, keys, f"U{i}", 1, "S", now=1000 + i)
    b = claim(r, keys, 1000, size=4)
    assert b.users == ["U0", "U1", "U2", "U3"]  # oldest first
    assert len(claim(r, keys, 1000, size=4).users) == 4
    assert claim(r, keys, 1000, size=4) == Wait(500 - (1000 - 1008), "delay")


def test_waiting_updates_are_coalesced_to_the_newest(r, keys):
    put(r, keys, "U1", 1, "S")
    put(r, keys, "U1", 2, "U")
    put(r, keys, "U1", 3, "S")
    b = claim(r, keys, 5000)
    assert [(i.user, i.state) for i in b.items] == [("U1", "S")]
    assert b.items[0].version == make_version(3, 1, 0, 0)


def test_a_user_is_in_one_batch_at_a_time(r, keys):
    put(r, keys, "U1", 1, "S")
    first = claim(r, keys, 5000)
    put(r, keys, "U1", 2, "U", now=5001)            # newer state while the first is in flight
    assert claim(r, keys, 9000) == Wait(0, "empty")   # not sent alongside
    outbox.finish(r, keys, first, delivered=1)
    second = claim(r, keys, 9000)
    assert [(i.user, i.state) for i in second.items] == [("U1", "U")]


def test_an_abandoned_batch_is_taken_over_after_its_lease(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000, lease_ms=1000)
    assert claim(r, keys, 5500, lease_ms=1000) == Wait(0, "empty")
    again = claim(r, keys, 6001, lease_ms=1000)
    assert again.id == b.id and again.taken_over and again.users == ["U1"]


def test_finish_is_idempotent_and_writes_dead_letters(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000)
    assert outbox.finish(r, keys, b, delivered=0, dead=[("track", "bad alias", {"user": "U1"})])
    assert not outbox.finish(r, keys, b, delivered=0, dead=[("track", "bad alias", {"user": "U1"})])
    assert r.xlen(keys.dlq) == 1
    assert r.hlen(keys.outbox_inflight) == 0


def test_reschedule_keeps_users_in_flight_and_saves_attempts(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000)
    b.attempts = 3
    outbox.reschedule(r, keys, b, due_ms=8000, save=True)
    put(r, keys, "U1", 2, "U", now=5001)
    assert claim(r, keys, 7000) == Wait(0, "empty")
    again = claim(r, keys, 8000)
    assert again.id == b.id and again.attempts == 3


def test_open_batches_are_capped(r, keys):
    for i in range(3):
        put(r, keys, f"U{i}", 1, "S")
    claim(r, keys, 5000, size=1, max_open=2)
    claim(r, keys, 5000, size=1, max_open=2)
    assert claim(r, keys, 5000, size=1, max_open=2) == Wait(0, "full")


def test_linked_profiles_count_toward_the_object_limit(r, keys):
    for i in range(3):
        put(r, keys, f"U{i}", 1, "S")
    r.hset(keys.links_line, "U0", "ext-a\next-b")
    b = claim(r, keys, 5000, size=4)
    assert b.users == ["U0", "U1"]          # 3 objects + 1
    assert b.items[0].external_ids == ["ext-a", "ext-b"]


def test_forwarded_events_fill_the_remaining_room(r, keys):
    put(r, keys, "U1", 1, "S", now=1000)
    for i in range(5):
        r.rpush(keys.outbox_events, '{"name":"line_postback","q":1000}')
    b = claim(r, keys, 1000, size=4)
    assert b.users == ["U1"] and len(b.events) == 3 and "q" not in b.events[0]
    assert r.llen(keys.outbox_events) == 2
