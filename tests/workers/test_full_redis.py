"""At maxmemory (noeviction) the workers keep draining: they free more than they write."""

from __future__ import annotations

import json

import pytest
import redis

from shared import outbox, state, webhook_queue
from shared.clock import FakeClock
from shared.embedded_redis import EmbeddedRedis
from shared.errors import StoreUnavailable
from shared.keys import Keys
from shared.limiter import Limiter
from shared.scripts import supports_flags
from workers import braze as b
from workers.consume import Consumer
from workers.deliver import Deliverer
from workers.sending import Sender


class AlwaysOK:
    def track(self, attributes, events, *, now):
        return b.Delivered()


@pytest.fixture
def full_redis():
    server = EmbeddedRedis().start()  # ours alone: filling it must not disturb other tests
    yield server
    server.cleanup()


def bodies(n):
    for i in range(n):
        events = [{"type": "follow", "timestamp": 1_700_000_000_000 + i, "webhookEventId": f"E{i}-{j}",
                   "mode": "active", "replyToken": "r" * 200,
                   "source": {"type": "user", "userId": f"U{(i * 3 + j):032x}"}} for j in range(3)]
        yield json.dumps({"destination": "Ubot", "events": events}).encode()


def test_consumers_and_senders_drain_a_full_redis_and_it_recovers(full_redis, settings):
    r = redis.Redis.from_url(full_redis.url)
    if not supports_flags(r):
        pytest.skip("this redis-server is older than 7: its scripts cannot be flagged allow-oom")
    keys = Keys()
    s = settings.replace(redis_url=full_redis.url, flush_delay_ms=0)
    webhook_queue.ensure_group(r, keys)
    for raw in bodies(3000):
        webhook_queue.enqueue(r, keys, raw)
    used = r.info("memory")["used_memory"]
    r.config_set("maxmemory", str(used - 200_000))  # Redis is now over its limit
    with pytest.raises(StoreUnavailable):
        webhook_queue.enqueue(r, keys, next(bodies(1)))  # the ingress's write is refused: 503

    clock = FakeClock()
    consumer = Consumer(r, keys, s, clock, "w:1:x/consume-0")
    for _ in range(100):
        if not r.xlen(keys.webhooks):
            break
        try:
            consumer.step(block_ms=10)
        except redis.ResponseError as e:
            pytest.fail(f"the consumer could not drain a full Redis: {e}")
    assert r.xlen(keys.webhooks) == 0
    sender = Sender(Limiter(r, keys, "track", s.braze_track_rate_limit), clock, auth_retry_seconds=60, what="t")
    d = Deliverer(r, keys, s, AlwaysOK(), sender, clock)
    for _ in range(1000):
        if not (outbox.sizes(r, keys)["pending_profiles"] or outbox.sizes(r, keys)["inflight_profiles"]):
            break
        clock.advance(max(d.step(), 0.001))
    assert outbox.sizes(r, keys)["open_batches"] == 0 and state.count(r, keys) == 9000
    assert r.info("memory")["used_memory"] < used - 200_000  # below the limit again...
    webhook_queue.enqueue(r, keys, next(bodies(1)))          # ...so the ingress is accepted again
