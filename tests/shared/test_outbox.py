"""Coalescing, batching and in-flight exclusivity of the outbox, on a real Redis."""

import hashlib
import json

from shared import buckets, forward, outbox, state
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


def test_batches_waiting_to_retry_are_listed_and_released_together(r, keys):
    for u in ("U1", "U2", "U3"):
        put(r, keys, u, 1, "S")
    batches = [claim(r, keys, 5000, size=1) for _ in range(3)]
    for i, b in enumerate(batches[:2]):               # two failed: each waits its own backoff
        b.attempts = 3
        outbox.reschedule(r, keys, b, due_ms=5000 + 600_000 * (i + 1), save=True, retry=True)
    assert outbox.sizes(r, keys)["retrying_batches"] == 2
    assert claim(r, keys, 6000, size=1) == Wait(0, "empty")  # nothing due; the third is still leased
    assert outbox.release_retries(r, keys, now_ms=7000, spacing_ms=5) == 2
    again = [claim(r, keys, 7010, size=1) for _ in range(2)]
    assert sorted(b.users[0] for b in again) == ["U1", "U2"] and all(b.attempts == 3 for b in again)
    assert outbox.sizes(r, keys)["retrying_batches"] == 0
    assert outbox.release_retries(r, keys, now_ms=8000) == 0


def test_a_probe_may_take_the_longest_waiting_retry_early(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000)
    outbox.reschedule(r, keys, b, due_ms=900_000, save=True, retry=True)
    assert claim(r, keys, 6000) == Wait(0, "empty")
    probe = claim(r, keys, 6000, probe=True)
    assert isinstance(probe, Batch) and probe.id == b.id and probe.taken_over
    assert outbox.sizes(r, keys)["retrying_batches"] == 0


def test_finishing_a_retried_batch_forgets_it(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000)
    outbox.reschedule(r, keys, b, due_ms=6000, save=True, retry=True)
    again = claim(r, keys, 6000)
    assert outbox.finish(r, keys, again, delivered=1, now_ms=6000)
    assert outbox.sizes(r, keys) == {"pending_profiles": 0, "inflight_profiles": 0, "open_batches": 0,
                                     "pending_events": 0, "retrying_batches": 0}
    assert int(r.get(keys.rate("delivered", 0))) == 1  # counted in the 10 s bucket of now_ms=6000


def test_a_pause_wait_is_not_a_retry(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000)
    outbox.reschedule(r, keys, b, due_ms=9000, save=True, retry=True)
    again = claim(r, keys, 9000)
    assert outbox.reschedule(r, keys, again, due_ms=9500)  # then held by a 429 pause instead
    assert outbox.sizes(r, keys)["retrying_batches"] == 0


def test_an_event_cjson_cannot_read_never_blocks_the_outbox(r, keys):
    # Python's json writes a lone surrogate as "\ud800"; Redis's cjson refuses to decode it.
    unreadable = forward.encode({"name": "line_message_received", "properties": {"text": "\ud800"}}, 900)
    r.rpush(keys.outbox_events, unreadable)
    r.rpush(keys.outbox_events, json.dumps({"name": "no_q"}))
    put(r, keys, "U1", 1, "S", now=1000)
    b = claim(r, keys, 1000)  # an unreadable head counts as long due: it goes now, with what is ready
    assert isinstance(b, Batch) and b.users == ["U1"]
    assert [e["name"] for e in b.events] == ["line_message_received", "no_q"]
    assert b.events[0]["properties"]["text"] == "\ud800"
    outbox.finish(r, keys, b, delivered=3)
    put(r, keys, "U2", 2, "S", now=2000)
    assert claim(r, keys, 2500).users == ["U2"]


def test_finish_and_claim_in_one_round_trip_even_after_a_script_flush(r, keys):
    for i in range(4):
        put(r, keys, f"U{i}", 1, "S")
    first = claim(r, keys, 5000, size=2)
    r.script_flush()                       # Redis forgot the scripts (a restart without its cache)
    done, nxt = outbox.finish_and_claim(r, keys, first, delivered=2, now_ms=5000, max_objects=2, flush_delay_ms=0)
    assert done and isinstance(nxt, Batch) and nxt.users == ["U2", "U3"]
    assert not r.hexists(keys.batches, first.id) and r.hget(keys.stats, "delivered_objects") == b"2"
    assert outbox.finish_and_claim(r, keys, nxt, delivered=2, now_ms=5000, max_objects=2,
                                   flush_delay_ms=0) == (True, Wait(0, "empty"))


def test_only_the_claim_holding_a_batch_may_settle_or_renew_it(r, keys):
    put(r, keys, "U1", 1, "S")
    slow = claim(r, keys, 5000, lease_ms=1000, owner="worker-a")
    assert outbox.renew(r, keys, slow, until_ms=5900) and slow.lease_until == 5900
    took = claim(r, keys, 6000, lease_ms=1000, owner="worker-b")   # A's lease lapsed: B takes the batch over
    assert took.id == slow.id and took.taken_over and took.owner != slow.owner
    assert r.hget(keys.batches_owner, took.id).decode().startswith("worker-b/")
    # A, late, can neither renew, retry, dead-letter nor finish it: B's users stay in flight.
    assert not outbox.renew(r, keys, slow, until_ms=99_000)
    assert not outbox.reschedule(r, keys, slow, due_ms=99_000, save=True, retry=True)
    assert not outbox.finish(r, keys, slow, delivered=0, dead=[("track", "late", {"user": "U1"})])
    assert not outbox.finish_and_claim(r, keys, slow, delivered=1, now_ms=6000, max_objects=75, flush_delay_ms=0)[0]
    assert r.hget(keys.outbox_inflight, "U1") == took.id.encode() and r.xlen(keys.dlq) == 0
    assert r.zscore(keys.batches_due, took.id) == 7000 and outbox.sizes(r, keys)["retrying_batches"] == 0
    assert outbox.finish(r, keys, took, delivered=1)               # the owner may
    assert r.hlen(keys.outbox_inflight) == 0 and r.hlen(keys.batches_owner) == 0


def test_a_lapsed_lease_nobody_took_is_renewed_and_a_put_back_batch_has_no_owner(r, keys):
    put(r, keys, "U1", 1, "S")
    b = claim(r, keys, 5000, lease_ms=1000)
    assert outbox.renew(r, keys, b, until_ms=9000)             # lapsed at 6000, but still nobody else's
    assert claim(r, keys, 8000, lease_ms=1000) == Wait(0, "empty")
    assert outbox.reschedule(r, keys, b, due_ms=9500)
    assert not r.hexists(keys.batches_owner, b.id)             # waiting: nobody holds it
    assert not outbox.renew(r, keys, b, until_ms=20_000)       # so the one that put it back can't send it
    assert not outbox.finish(r, keys, b, delivered=1)
    again = claim(r, keys, 9500)
    assert again.id == b.id and outbox.finish(r, keys, again, delivered=1)


# ----------------------------------------------------------------------------- dirty flags in state buckets

def line_user(i):
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


def apply_many(r, keys, users, st="S", ts=1, now=1000):
    state.apply(r, keys, [Change(u, make_version(ts, 1, 0, i), st, None) for i, u in enumerate(users)],
                now_ms=now, dedupe_ttl=60)


def drain(r, keys, now=5000, size=75):
    got = []
    while isinstance(b := outbox.claim(r, keys, now_ms=now, max_objects=size, flush_delay_ms=0), outbox.Batch):
        got += [(i.user, i.state) for i in b.items]
        assert outbox.finish(r, keys, b, delivered=len(b.items), now_ms=now)
    return got


def test_a_first_sync_costs_the_outbox_a_bucket_not_a_user(r, keys):
    users = [line_user(i) for i in range(2000)]
    apply_many(r, keys, users)
    assert r.zcard(keys.outbox_ready) == 0 and 0 < r.zcard(keys.outbox_buckets) <= 2000 // buckets.LOAD + 1
    assert outbox.sizes(r, keys)["pending_profiles"] == 2000
    assert all(outbox.pending(r, keys, users[:10]))
    got = drain(r, keys)
    assert sorted(got) == sorted((u, "S") for u in users)  # each once
    assert outbox.sizes(r, keys)["pending_profiles"] == 0 and r.zcard(keys.outbox_buckets) == 0
    assert not any(state.dirty_many(r, keys, users)) and not any(outbox.pending(r, keys, users[:10]))


def test_a_user_changed_while_in_flight_waits_for_its_batch_then_goes_with_its_newest_state(r, keys):
    u, other = line_user(1), line_user(2)
    apply_many(r, keys, [u])
    b = outbox.claim(r, keys, now_ms=5000, max_objects=75, flush_delay_ms=0)
    apply_many(r, keys, [u, other], st="U", ts=2)
    b2 = outbox.claim(r, keys, now_ms=5000, max_objects=75, flush_delay_ms=0)
    assert [i.user for i in b2.items] == [other]  # u is in flight: it waits
    assert outbox.finish(r, keys, b, delivered=1, now_ms=5000) and outbox.finish(r, keys, b2, delivered=1, now_ms=5000)
    assert drain(r, keys) == [(u, "U")]
    assert outbox.sizes(r, keys)["pending_profiles"] == 0


def test_dirty_users_moved_by_a_split_are_still_claimed(r, keys):
    first = [line_user(i) for i in range(90)]
    apply_many(r, keys, first)             # one bucket, all dirty
    apply_many(r, keys, [line_user(i) for i in range(90, 400)])  # splits move dirty users to new buckets
    assert int(r.hget(keys.state_meta, "buckets")) > 1
    assert sorted(u for u, _ in drain(r, keys)) == sorted(line_user(i) for i in range(400))


def test_same_state_again_keeps_a_waiting_user_dirty(r, keys):
    u = line_user(3)
    apply_many(r, keys, [u])
    apply_many(r, keys, [u], ts=2)  # unchanged: not a transition, but it still waits to be sent
    assert drain(r, keys) == [(u, "S")]


def test_a_user_listed_alone_and_flagged_is_sent_once(r, keys):
    u = line_user(4)
    apply_many(r, keys, [u])
    state.mark_dirty(r, keys, [u], now_ms=900)  # a link or a DLQ replay lists it alone too
    assert drain(r, keys) == [(u, "S")]
    assert outbox.sizes(r, keys)["pending_profiles"] == 0


def test_users_dirty_in_many_buckets_go_in_one_batch(r, keys):
    users = [line_user(i) for i in range(3000)]
    apply_many(r, keys, users)
    drain(r, keys)
    changed = users[::50]                           # 60 users, most alone in their bucket
    apply_many(r, keys, changed, st="U", ts=2)
    assert r.zcard(keys.outbox_buckets) > 20         # more buckets than the claim's first pages list
    b = outbox.claim(r, keys, now_ms=5000, max_objects=75, flush_delay_ms=0)
    assert sorted(i.user for i in b.items) == sorted(changed) and {i.state for i in b.items} == {"U"}
    assert r.zcard(keys.outbox_buckets) == 0 and outbox.sizes(r, keys)["pending_profiles"] == 0


def test_a_partial_batch_that_must_wait_reads_no_bucket(r, keys):
    users = ["U" + hashlib.md5(str(i).encode()).hexdigest() for i in range(300)]
    state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S", None) for u in users], now_ms=1000, dedupe_ttl=60)
    taken = claim(r, keys, 1000, size=250)
    assert isinstance(taken, Batch) and len(taken.users) == 250
    r.config_resetstat()
    assert claim(r, keys, 1200, size=250) == Wait(300, "delay")  # 50 left: they cannot fill a batch yet
    assert "cmdstat_hgetall" not in r.info("commandstats")
    b = claim(r, keys, 1500, size=250)
    assert sorted(b.users) == sorted(set(users) - set(taken.users))


def test_a_webhook_event_lists_its_user_alone_and_a_resync_flags_its_bucket(r, keys):
    users = ["U" + hashlib.md5(str(i).encode()).hexdigest() for i in range(400)]
    resynced, hooked = users[:200], users[200:]
    state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S", None) for u in resynced], now_ms=1000,
                dedupe_ttl=60)  # a resync page: flags in the buckets
    events = [Change(u, make_version(2, 2, 0, 0), "U", f"e-{u}") for u in hooked + resynced[:5]]
    res = state.apply(r, keys, events, now_ms=2000, dedupe_ttl=60)
    assert res.applied == 205
    # Users made dirty by an event are listed alone; those already flagged stay flagged, listed once.
    assert set(m.decode() for m in r.zrange(keys.outbox_ready, 0, -1)) == set(hooked)
    assert r.zscore(keys.outbox_ready, hooked[0]) == 2000 and not state.dirty_many(r, keys, hooked)[0]
    assert all(state.dirty_many(r, keys, resynced))
    assert {s for _, s in r.zrange(keys.outbox_buckets, 0, -1, withscores=True)} == {1000}  # (and splits)
    assert outbox.sizes(r, keys)["pending_profiles"] == 400
    sent = {}
    while not isinstance(b := claim(r, keys, 10_000, size=75), Wait):
        sent.update(zip(b.users, (i.state for i in b.items)))
        outbox.finish(r, keys, b, delivered=len(b.users))
    assert sorted(sent) == sorted(users)  # each once, with its newest state
    assert all(sent[u] == "U" for u in hooked + resynced[:5]) and all(sent[u] == "S" for u in resynced[5:])
    assert outbox.sizes(r, keys)["pending_profiles"] == 0


def test_events_for_users_listed_alone_are_claimed_without_reading_a_bucket(r, keys):
    users = ["U" + hashlib.md5(str(i).encode()).hexdigest() for i in range(300)]
    state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S", None) for u in users], now_ms=1000, dedupe_ttl=60)
    while not isinstance(b := claim(r, keys, 10_000, size=300), Wait):
        outbox.finish(r, keys, b, delivered=len(b.users))
    state.apply(r, keys, [Change(u, make_version(2, 2, 0, 0), "U", f"e-{u}") for u in users[:80]], now_ms=20_000,
                dedupe_ttl=60)
    r.config_resetstat()
    b = claim(r, keys, 20_000, size=75)
    assert isinstance(b, Batch) and len(b.users) == 75 and set(b.users) <= set(users[:80])
    assert "cmdstat_hgetall" not in r.info("commandstats")


def test_past_ten_thousand_users_listed_alone_events_flag_buckets_instead(r, keys):
    r.zadd(keys.outbox_ready, {f"u-{i}": 1 for i in range(10_000)})  # a backlog: deliveries stopped
    u = "U" + "cd" * 16
    state.apply(r, keys, [Change(u, make_version(1, 1, 0, 0), "S", "e1")], now_ms=1000, dedupe_ttl=60)
    assert r.zscore(keys.outbox_ready, u) is None and state.dirty_many(r, keys, [u]) == [True]
    r.zrem(keys.outbox_ready, "u-0")
    state.apply(r, keys, [Change(u, make_version(2, 2, 0, 0), "U", "e2")], now_ms=2000, dedupe_ttl=60)
    assert r.zscore(keys.outbox_ready, u) is None  # still flagged: it stays where it waits
    v = "U" + "ef" * 16
    state.apply(r, keys, [Change(v, make_version(1, 1, 0, 0), "S", "e3")], now_ms=3000, dedupe_ttl=60)
    assert r.zscore(keys.outbox_ready, v) == 3000 and state.dirty_many(r, keys, [v]) == [False]
