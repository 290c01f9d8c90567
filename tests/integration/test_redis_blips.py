"""Every long-running process rides out a Redis outage of 30 s and carries on by itself."""

from __future__ import annotations

import time

import pytest
import redis

from shared import webhook_queue
from shared.embedded_redis import EmbeddedRedis
from shared.keys import Keys
from tests.integration.conftest import API_KEY, GROUP, body, follow_event
from tests.support.procs import base_env, celery_beat, celery_worker, wait_until

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 32


@pytest.fixture
def own_redis():
    server = EmbeddedRedis().start()  # ours alone: the outage must not disturb other tests
    yield server
    server.cleanup()


def test_worker_and_beat_survive_a_redis_restart_after_30_s(own_redis, braze):
    env = base_env(REDIS_URL=own_redis.url, BRAZE_REST_ENDPOINT=braze.url, BRAZE_API_KEY=API_KEY,
                   BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false", BRAZE_FLUSH_DELAY_MS="100")
    r = redis.Redis.from_url(own_redis.url)
    keys = Keys()
    worker = celery_worker(env, concurrency=4, name="blip")
    beat = celery_beat(env)
    procs = [worker, beat]
    try:
        wait_until(lambda: r.exists(keys.redbeat_lock), timeout=30, on_fail=beat.output)

        def deliver(users, ts):
            webhook_queue.ensure_group(r, keys)
            webhook_queue.enqueue(r, keys, body(*(follow_event(u, ts) for u in users)))
            wait_until(lambda: all(braze.subscription_state(GROUP, alias_name=u, alias_label="line_id")
                                   == "subscribed" for u in users), timeout=60,
                       on_fail=lambda: worker.output()[-3000:])

        deliver(["U" + "1" * 32], 1_000)
        own_redis.stop()
        time.sleep(OUTAGE_SECONDS)
        assert worker.proc.poll() is None, worker.output()[-3000:]
        assert beat.proc.poll() is None, beat.output()[-3000:]
        own_redis.start()  # same port and data directory; AOF brings the data back
        deliver(["U" + "2" * 32], 2_000)
        wait_until(lambda: r.exists(keys.redbeat_lock), timeout=30, on_fail=beat.output)
        time.sleep(3)  # a few beat ticks after the outage
        assert beat.proc.poll() is None, beat.output()[-3000:]
        assert worker.proc.poll() is None, worker.output()[-3000:]
    finally:
        for p in procs:
            p.kill()
