"""A worker process's engine, in this process: real Redis, the Braze sandbox over HTTP."""

import json
import time


from shared import outbox, webhook_queue
from shared.keys import STREAM_GROUP
from tests.support.procs import wait_until
from workers.engine import Engine
from tests.workers.conftest import API_KEY, GROUP
from workers.runtime import build



def follow_body(users, ts):
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": ts, "webhookEventId": f"E{u}", "mode": "active",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


def test_an_engine_runs_the_whole_pipeline_and_leaves_cleanly(r, keys, rt, braze):
    users = [f"U{i:032x}" for i in range(400)]
    webhook_queue.ensure_group(r, keys)
    for i in range(0, len(users), 4):
        webhook_queue.enqueue(r, keys, follow_body(users[i:i + 4], 1_700_000_000_000 + i))
    engine = Engine(rt, consume_loops=1).start()
    try:
        assert r.exists(keys.worker(engine.name)) and r.zscore(keys.workers, engine.name)
        wait_until(lambda: braze.stats()["objects_received"] >= len(users) and
                   outbox.sizes(r, keys)["inflight_profiles"] == 0, timeout=30)
    finally:
        engine.stop()
    assert all(braze.subscription_state(GROUP, alias_name=u, alias_label="line_id") == "subscribed"
               for u in users)
    assert not r.exists(keys.worker(engine.name)) and r.zscore(keys.workers, engine.name) is None
    consumers = [c["name"].decode() for c in r.xinfo_consumers(keys.webhooks, STREAM_GROUP)]
    assert consumers == [f"{engine.name}/consume-0"]


def test_a_dead_engines_stream_entries_are_taken_over_by_a_live_one(r, keys, rt, braze, monkeypatch):
    from workers import stream_consumer
    monkeypatch.setattr(stream_consumer, "CLAIM_MIN_IDLE_MS", 0)
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, follow_body(["U" + "d" * 32], 1_700_000_000_000))
    # A worker that read the body and died (no lease) before applying it:
    r.xreadgroup(STREAM_GROUP, "gone:1:abc/consume-0", {keys.webhooks: ">"}, count=10)
    engine = Engine(rt, consume_loops=1).start()
    t0 = time.monotonic()
    try:
        wait_until(lambda: braze.subscription_state(GROUP, alias_name="U" + "d" * 32, alias_label="line_id")
                   == "subscribed", timeout=20)
    finally:
        engine.stop()
    # Taken over at once, not after LINESYNC_CONSUME_CLAIM_IDLE_MS (30 s) of idleness.
    assert time.monotonic() - t0 < rt.settings.consume_claim_idle_ms / 1000


def test_an_engine_starts_with_redis_away_and_stops_cleanly(settings, braze):
    s = settings.replace(redis_url="redis://127.0.0.1:1/0", braze_rest_endpoint=braze.url,
                         braze_api_key=API_KEY, braze_subscription_group_id=GROUP, delivery_concurrency=2)
    engine = Engine(build(s), consume_loops=1).start()  # Redis away: no exception, loops wait for it
    try:
        assert all(t.is_alive() for t in engine._threads)
    finally:
        engine.stop(timeout=5)
    assert not any(t.is_alive() for t in engine._threads)
