"""Taking over a dead worker's share of a stream (workers/streams.py)."""

from shared.keys import STREAM_GROUP
from workers import streams


def setup_stream(r, keys, n=5):
    r.xgroup_create(keys.identity, STREAM_GROUP, id="0", mkstream=True)
    return [r.xadd(keys.identity, {"n": str(i)}) for i in range(n)]


def read(r, keys, consumer, count):
    return r.xreadgroup(STREAM_GROUP, consumer, {keys.identity: ">"}, count=count)


def test_a_dead_workers_entries_are_claimed_at_once_and_its_consumer_dropped(r, keys, monkeypatch):
    monkeypatch.setattr(streams, "CLAIM_MIN_IDLE_MS", 0)
    ids = setup_stream(r, keys)
    read(r, keys, "host:1:aaa/identity", 3)   # a worker that will die holding 3
    read(r, keys, "host:2:bbb/identity", 2)   # a live one
    alive = {"host:2:bbb", "host:3:ccc"}
    seen = []
    moved = streams.take_over(r, keys.identity, me="host:3:ccc/identity", is_alive=alive.__contains__,
                              handle=seen.extend)
    assert moved == 3 and [eid for eid, _ in seen] == ids[:3]
    consumers = {c["name"].decode(): c["pending"] for c in r.xinfo_consumers(keys.identity, STREAM_GROUP)}
    assert consumers == {"host:2:bbb/identity": 2, "host:3:ccc/identity": 3}


def test_consumers_named_before_worker_leases_count_as_dead(r, keys, monkeypatch):
    monkeypatch.setattr(streams, "CLAIM_MIN_IDLE_MS", 0)
    setup_stream(r, keys, 2)
    read(r, keys, "identity-0", 2)            # the name an older release used
    assert streams.take_over(r, keys.identity, me="h:1:x/identity", is_alive=lambda w: w == "h:1:x") == 2


def test_entries_just_claimed_by_another_taker_are_left_alone(r, keys):
    setup_stream(r, keys, 2)
    read(r, keys, "dead:1:x/identity", 2)
    # Just delivered (idle < CLAIM_MIN_IDLE_MS): a second taker at the same instant claims nothing,
    # and the consumer stays until its entries are taken.
    assert streams.take_over(r, keys.identity, me="h:2:y/identity", is_alive=lambda w: w == "h:2:y") == 0
    names = {c["name"].decode() for c in r.xinfo_consumers(keys.identity, STREAM_GROUP)}
    assert "dead:1:x/identity" in names
