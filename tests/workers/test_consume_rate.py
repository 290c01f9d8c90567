"""The consumer writes the webhook rate once a second at most, not one round trip per step."""

import json

from shared import rates, webhook_queue
from shared.clock import FakeClock
from workers import consume
from workers.consume import Consumer


def body(user, eid):
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": 10, "webhookEventId": eid, "mode": "active",
         "source": {"type": "user", "userId": user}}]}).encode()


def test_the_webhook_rate_is_written_at_most_once_a_second_and_nothing_is_lost(r, keys, settings, monkeypatch):
    writes = []
    add = rates.add
    monkeypatch.setattr(consume.rates, "add", lambda *a, **kw: (writes.append(a[3]), add(*a, **kw)))
    clock = FakeClock()
    c = Consumer(r, keys, settings.replace(consume_batch_bodies=1), clock, "c1")
    webhook_queue.ensure_group(r, keys)
    for i in range(5):
        webhook_queue.enqueue(r, keys, body(f"U{i}", f"e{i}"))
    for _ in range(3):
        c.step(block_ms=10)      # one body a step, within the same second
    assert writes == [1]          # the first step wrote; the next two only counted
    clock.advance(1.0)
    c.step(block_ms=10)
    assert writes == [1, 3]       # a second later: the two counted bodies and this one
    c.step(block_ms=10)
    c.step(block_ms=10)           # nothing new: what was counted is written now
    assert writes == [1, 3, 1] and sum(writes) == 5
    assert rates.per_second(r, keys, rates.WEBHOOKS, clock.now() + rates.BUCKET) > 0
