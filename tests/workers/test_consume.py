"""The stream consumer against a real Redis: batching, acks, recovery, dead letters."""

import json
import time

from shared import state, webhook_queue
from shared.clock import FakeClock
from shared.keys import STREAM_GROUP
from workers.consume import Consumer


def body(*events):
    return json.dumps({"destination": "Ubot", "events": list(events)}).encode()


def ev(type_, ts, user, eid):
    return {"type": type_, "timestamp": ts, "webhookEventId": eid, "mode": "active",
            "source": {"type": "user", "userId": user}}


def consumer(r, keys, settings, name="c1", clock=None, **overrides):
    s = settings.replace(consume_claim_idle_ms=1, **overrides)
    return Consumer(r, keys, s, clock or FakeClock(), name)


def test_bodies_become_state_and_are_acknowledged(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a"), ev("unfollow", 11, "U2", "b")))
    webhook_queue.enqueue(r, keys, body(ev("message", 12, "U1", "c"), {"type": "somethingNew", "timestamp": 1}))
    c = consumer(r, keys, settings)
    assert c.step(block_ms=10) == 0.0 and c.last_handled == 2
    assert state.get(r, keys, "U1")[1] == "S" and state.get(r, keys, "U2")[1] == "U"
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.stats).items()}
    assert stats["events:follow"] == 1 and stats["events:somethingNew"] == 1 and stats["bodies"] == 2
    assert stats["events_without_user"] == 1


def test_a_dead_consumers_entries_are_taken_over(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    r.xreadgroup(STREAM_GROUP, "dead", {keys.webhooks: ">"})  # read, then "killed" before acking
    time.sleep(0.01)  # idle longer than the 1 ms claim threshold
    c = consumer(r, keys, settings, name="alive")
    c.step(block_ms=10)
    assert state.get(r, keys, "U1")[1] == "S"
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0


def test_running_a_batch_twice_changes_nothing(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    entries = r.xreadgroup(STREAM_GROUP, "c1", {keys.webhooks: ">"})[0][1]
    c = consumer(r, keys, settings)
    c.process(entries)
    r.delete(keys.outbox_ready)
    c.process(entries)  # e.g. a crash after the script ran but before the task finished
    assert r.zcard(keys.outbox_ready) == 0
    assert r.hget(keys.stats, "duplicates") == b"1"


def test_poison_entries_go_to_the_dead_letter_stream(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    for i in range(3):  # three consumers died holding it
        r.xautoclaim(keys.webhooks, STREAM_GROUP, f"dead{i}", 0, "0-0") if i else \
            r.xreadgroup(STREAM_GROUP, "dead0", {keys.webhooks: ">"})
    time.sleep(0.01)
    c = consumer(r, keys, settings, consume_max_deliveries=3)
    c.step(block_ms=10)
    letters = r.xrange(keys.dlq)
    assert len(letters) == 1 and letters[0][1][b"kind"] == b"webhook"
    assert state.get(r, keys, "U1") is None
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0


def test_unparseable_body_is_dead_lettered_not_retried(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, b"not json")
    consumer(r, keys, settings).step(block_ms=10)
    assert r.xlen(keys.dlq) == 1
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0


def test_forwarding_is_off_by_default_and_on_when_listed(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    msg = ev("message", 10, "U1", "m1")
    msg["message"] = {"type": "text", "text": "hi"}
    webhook_queue.enqueue(r, keys, body(msg))
    consumer(r, keys, settings).step(block_ms=10)
    assert r.llen(keys.outbox_events) == 0
    r.flushall()
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(msg))
    webhook_queue.enqueue(r, keys, body(msg))  # redelivered: forwarded once
    consumer(r, keys, settings, forward_event_types=("message",)).step(block_ms=10)
    events = [json.loads(x) for x in r.lrange(keys.outbox_events, 0, -1)]
    assert len(events) == 1
    assert events[0]["name"] == "line_message_received"
    assert events[0]["properties"] == {"message_type": "text", "text": "hi"}
    assert events[0]["time"] == "1970-01-01T00:00:00.010Z"


def test_finished_bodies_leave_the_stream(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    webhook_queue.enqueue(r, keys, b"not json")
    consumer(r, keys, settings).step(block_ms=10)
    assert r.xlen(keys.webhooks) == 0  # memory stays bounded by the backlog
