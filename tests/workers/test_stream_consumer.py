"""The one stream consumer (workers/stream_consumer.py): its contract, against a real Redis."""

import json

import pytest

from shared.clock import FakeClock
from shared.keys import STREAM_GROUP
from workers import stream_consumer
from workers.stream_consumer import StreamConsumer

CLAIM_IDLE_MS = 30_000


def letter(eid, fields):
    return "identify", {k.decode(): v.decode() for k, v in fields.items()}


@pytest.fixture
def make(r, keys):
    leases: set[str] = set()

    def _make(name, *, max_deliveries=5, clock=None, **kw):
        leases.add(stream_consumer.worker_of(name))
        return StreamConsumer(r, keys, keys.identity, name, clock=clock or FakeClock(),
                              claim_idle_ms=CLAIM_IDLE_MS, max_deliveries=max_deliveries, letter=letter,
                              is_alive=leases.__contains__, **kw)
    _make.leases = leases
    return _make


def setup_stream(r, keys, n=5):
    r.xgroup_create(keys.identity, STREAM_GROUP, id="0", mkstream=True)
    return [r.xadd(keys.identity, {"n": str(i)}) for i in range(n)]


def read(r, keys, consumer, count):
    return r.xreadgroup(STREAM_GROUP, consumer, {keys.identity: ">"}, count=count)


def pending(r, keys) -> dict:
    """id -> (consumer, idle ms, times delivered)."""
    rows = r.xpending_range(keys.identity, STREAM_GROUP, min="-", max="+", count=1000)
    return {p["message_id"]: (p["consumer"].decode(), p["time_since_delivered"], p["times_delivered"])
            for p in rows}


def age(r, keys, ms):
    """Every pending entry looks idle for ``ms`` (as if its holder had done nothing for that long)."""
    for eid, (owner, _, _) in pending(r, keys).items():
        r.xclaim(keys.identity, STREAM_GROUP, owner, 0, [eid], idle=ms, justid=True)


def test_consumers_with_their_own_names_read_disjoint_entries(r, keys, make):
    ids = setup_stream(r, keys, 6)
    a, b = make("h:1:a/identity"), make("h:2:b/identity")
    got_a, got_b = a.read_new(4), b.read_new(4)
    assert [e for e, _ in got_a] == ids[:4] and [e for e, _ in got_b] == ids[4:]
    assert got_a[0][1] == {b"n": b"0"}
    assert {o for o, _, _ in pending(r, keys).values()} == {"h:1:a/identity", "h:2:b/identity"}


def test_the_group_is_created_on_first_use(r, keys, make):
    assert make("h:1:a/identity").read_new(10) == []
    assert r.xinfo_groups(keys.identity)[0]["name"] == STREAM_GROUP.encode()


def test_own_returns_only_this_consumers_entries_and_renews_them_without_counting_a_delivery(r, keys, make):
    ids = setup_stream(r, keys, 4)
    a, b = make("h:1:a/identity"), make("h:2:b/identity")
    a.read_new(3)
    b.read_new(1)
    age(r, keys, 60_000)
    own = a.own(2)
    assert [e for e, _ in own] == ids[:2] and own[1][1] == {b"n": b"1"}
    p = pending(r, keys)
    # All three of a's are renewed (not only those returned), none counted as delivered again.
    assert all(p[i][1] < 60_000 and p[i][2] == 1 for i in ids[:3])
    assert p[ids[3]][1] >= 60_000  # b's is left alone


def test_own_forgets_entries_deleted_from_the_stream(r, keys, make):
    ids = setup_stream(r, keys, 2)
    a = make("h:1:a/identity")
    a.read_new(2)
    r.xdel(keys.identity, ids[0])
    assert [e for e, _ in a.own(10)] == [ids[1]]
    assert list(pending(r, keys)) == [ids[1]]


def test_a_dead_workers_entries_are_claimed_at_once_and_its_consumer_dropped(r, keys, make, monkeypatch):
    monkeypatch.setattr(stream_consumer, "CLAIM_MIN_IDLE_MS", 0)
    ids = setup_stream(r, keys)
    read(r, keys, "host:1:aaa/identity", 3)   # a worker that will die holding 3
    read(r, keys, "host:2:bbb/identity", 2)   # a live one
    make("host:2:bbb/identity")
    me = make("host:3:ccc/identity")
    seen = []
    assert me.recover(seen.extend) == 3
    assert [eid for eid, _ in seen] == ids[:3]
    consumers = {c["name"].decode(): c["pending"] for c in r.xinfo_consumers(keys.identity, STREAM_GROUP)}
    assert consumers == {"host:2:bbb/identity": 2, "host:3:ccc/identity": 3}
    assert [e for e, _ in me.own(10)] == ids[:3]  # and read as its own from then on


def test_consumers_named_before_worker_leases_count_as_dead(r, keys, make, monkeypatch):
    monkeypatch.setattr(stream_consumer, "CLAIM_MIN_IDLE_MS", 0)
    setup_stream(r, keys, 2)
    read(r, keys, "identity-0", 2)            # the name an older release used
    me = make("h:1:x/identity")
    assert me.take_over_dead() == 2 and len(me.own(10)) == 2


def test_entries_just_claimed_by_another_taker_are_left_alone(r, keys, make):
    setup_stream(r, keys, 2)
    read(r, keys, "dead:1:x/identity", 2)
    # Just delivered (idle < CLAIM_MIN_IDLE_MS): a second taker at the same instant claims nothing,
    # and the consumer stays until its entries are taken.
    assert make("h:2:y/identity").take_over_dead() == 0
    names = {c["name"].decode() for c in r.xinfo_consumers(keys.identity, STREAM_GROUP)}
    assert "dead:1:x/identity" in names


def test_entries_idle_too_long_in_a_live_consumer_are_taken_over_and_renewed_ones_are_not(r, keys, make):
    ids = setup_stream(r, keys, 4)
    stuck, waiting, me = make("h:1:a/identity"), make("h:2:b/identity"), make("h:3:c/identity")
    stuck.read_new(2)
    waiting.read_new(2)
    age(r, keys, CLAIM_IDLE_MS + 1000)
    waiting.own(10)  # a loop that only waits (a pause, the breaker) renews what it holds
    seen = []
    assert me.recover(seen.extend) == 2
    assert [e for e, _ in seen] == ids[:2]
    assert {i: o for i, (o, _, _) in pending(r, keys).items()} == {
        ids[0]: "h:3:c/identity", ids[1]: "h:3:c/identity", ids[2]: "h:2:b/identity", ids[3]: "h:2:b/identity"}
    assert stuck.own(10) == []  # the stuck one has lost them: it cannot send them too


def test_an_entry_delivered_too_often_is_dead_lettered_when_claimed(r, keys, make):
    ids = setup_stream(r, keys, 2)
    read(r, keys, "h:1:a/identity", 2)
    for name in ("h:2:b/identity", "h:3:c/identity"):  # taken over twice as stale
        age(r, keys, CLAIM_IDLE_MS + 1000)
        make(name).recover()
    age(r, keys, CLAIM_IDLE_MS + 1000)
    seen = []
    make("h:4:d/identity", max_deliveries=3).recover(seen.extend)  # the 4th delivery
    assert seen == []
    letters = r.xrange(keys.dlq)
    assert [json.loads(f[b"payload"]) for _, f in letters] == [{"n": "0"}, {"n": "1"}]
    assert letters[0][1][b"reason"] == b"delivered 4 times without success"
    assert r.xlen(keys.identity) == 0 and pending(r, keys) == {} and ids


def test_recovery_is_due_once_per_interval(make):
    clock = FakeClock()
    c = make("h:1:a/identity", clock=clock, recover_every=5.0)
    assert c.recover_due() and not c.recover_due()
    clock.advance(5)
    assert c.recover_due()


def test_ack_and_dead_letter_settle_in_one_transaction_with_the_loops_own_commands(r, keys, make):
    ids = setup_stream(r, keys, 3)
    forgotten = []
    c = make("h:1:a/identity", on_settle=lambda p, done: (forgotten.extend(done), p.hdel(keys.identity_attempts, *done)))
    r.hset(keys.identity_attempts, mapping={i: 1 for i in ids})
    entries = c.read_new(3)
    c.ack([ids[0]])
    c.dead_letter(entries[1:], "gave up")
    assert r.xlen(keys.identity) == 0 and pending(r, keys) == {} and r.hlen(keys.identity_attempts) == 0
    assert forgotten == ids
    assert [(f[b"kind"], f[b"reason"]) for _, f in r.xrange(keys.dlq)] == [(b"identify", b"gave up")] * 2
    assert r.hget(keys.stats, "dead_lettered") == b"2"


def test_renew_names_what_is_still_ours_after_another_consumer_took_some_over(r, keys, make):
    ids = setup_stream(r, keys, 3)
    slow, other = make("h:1:a/identity"), make("h:2:b/identity")
    slow.read_new(3)
    r.xclaim(keys.identity, STREAM_GROUP, "h:1:a/identity", 0, [ids[0]], idle=CLAIM_IDLE_MS + 1000, justid=True)
    other.recover()                  # the one left idle too long is taken over
    assert slow.renew() == set(ids[1:])
    assert other.renew() == {ids[0]}
