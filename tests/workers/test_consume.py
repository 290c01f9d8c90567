"""The stream consumer against a real Redis: batching, acks, recovery, dead letters."""

import json
import logging
import time

import pytest
import redis

from shared import dedupe, state, webhook_queue
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


def test_a_body_failing_in_a_batch_is_dead_lettered_alone(r, keys, settings):
    def hook(events):  # e.g. a bug or bad data met while the batch is applied
        if any(e.user_id == "Ubad" for e in events):
            raise ValueError("cannot handle this one")

    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    bad = webhook_queue.enqueue(r, keys, body(ev("follow", 10, "Ubad", "b")))
    webhook_queue.enqueue(r, keys, body(ev("unfollow", 10, "U3", "c")))
    Consumer(r, keys, settings, FakeClock(), "c1", hooks=[hook]).step(block_ms=10)
    assert state.get(r, keys, "U1")[1] == "S" and state.get(r, keys, "U3")[1] == "U"
    assert state.get(r, keys, "Ubad") is None
    [(_, letter)] = r.xrange(keys.dlq)
    assert json.loads(letter[b"payload"])["stream_id"] == bad
    assert b"ValueError" in letter[b"reason"] and b"cannot handle this one" in letter[b"reason"]
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0 and r.xlen(keys.webhooks) == 0
    assert r.hget(keys.stats, "bodies") == b"2"


def test_bodies_the_ingress_would_refuse_are_dead_lettered_alone(r, keys, settings):
    # Already in the stream (stored before the ingress refused them, or replayed from the DLQ).
    webhook_queue.ensure_group(r, keys)
    surrogate = b'{"destination":"U","events":[{"type":"follow","timestamp":1,"source":{"userId":"U\\ud800"}}]}'
    refused = [webhook_queue.enqueue(r, keys, raw) for raw in (
        surrogate,
        body(ev("follow", 10**20, "U2", "far-future")),  # forwarded: its time cannot be formatted
        body(ev("follow", 10, "U3", "e" * 200)),
        body(ev("follow", 10, "U" * 100, "long-user")),
    )]
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    consumer(r, keys, settings, forward_event_types=("follow",)).step(block_ms=10)
    assert state.get(r, keys, "U1")[1] == "S"
    assert [json.loads(f[b"payload"])["stream_id"] for _, f in r.xrange(keys.dlq)] == refused
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 0
    assert not dedupe.remembered(r, keys, "e" * 200, now_ms=int(r.time()[0]) * 1000,
                                 ttl_seconds=settings.dedupe_ttl_seconds)


def test_a_body_redis_refuses_waits_for_redelivery_and_redis_away_fails_the_batch(r, keys, settings, monkeypatch):
    apply = state.apply

    def refusing(r_, keys_, changes, **kw):
        if any(c.user == "Ubad" for c in changes):
            raise redis.ResponseError("OOM command not allowed")
        if any(c.user == "Udown" for c in changes):
            raise redis.ConnectionError("gone")
        return apply(r_, keys_, changes, **kw)

    monkeypatch.setattr(state, "apply", refusing)
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U1", "a")))
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "Ubad", "b")))
    c = consumer(r, keys, settings)
    c.step(block_ms=10)
    assert state.get(r, keys, "U1")[1] == "S"
    assert r.xlen(keys.dlq) == 0 and r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 1
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "U2", "c")))
    webhook_queue.enqueue(r, keys, body(ev("follow", 10, "Udown", "d")))
    with pytest.raises(redis.ConnectionError):
        c.step(block_ms=10)
    assert r.xlen(keys.dlq) == 0 and state.get(r, keys, "U2") is None
    assert r.xpending(keys.webhooks, STREAM_GROUP)["pending"] == 3


def test_a_future_dated_event_counts_as_stored_and_cannot_freeze_a_user(r, keys, settings):
    webhook_queue.ensure_group(r, keys)
    tomorrow = int(time.time() * 1000) + 86_400_000
    webhook_queue.enqueue(r, keys, body(ev("follow", tomorrow, "U1", "a")))
    now = int(time.time() * 1000)
    time.sleep(0.002)
    webhook_queue.enqueue(r, keys, body(ev("unfollow", now + 1, "U1", "b")))  # later, real
    consumer(r, keys, settings).step(block_ms=10)
    assert state.get(r, keys, "U1")[1] == "U"


def test_a_dead_lettered_body_is_logged_by_id_and_size_not_content(r, keys, settings, caplog):
    webhook_queue.ensure_group(r, keys)
    raw = b'not json {"displayName": "Taro Yamada", "text": "my phone is 090-0000-0000"}'
    eid = webhook_queue.enqueue(r, keys, raw)
    with caplog.at_level(logging.DEBUG, logger="workers.consume"):
        consumer(r, keys, settings).step(block_ms=10)
    assert eid in caplog.text and f"{len(raw)} bytes" in caplog.text and "not JSON" in caplog.text
    assert "Taro" not in caplog.text and "090-0000" not in caplog.text and "not json" not in caplog.text
