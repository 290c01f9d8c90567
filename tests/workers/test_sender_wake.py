"""A sender watching the outbox is woken by its process's consumers, not only by its poll."""

import json

from shared import webhook_queue
from tests.support.procs import wait_until
from workers import deliver
from workers.engine import Engine
from workers.runtime import build


def follow_body(users, ts):
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": ts, "webhookEventId": f"E{u}", "mode": "active",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


def test_a_batchs_worth_of_new_work_wakes_the_watching_sender(r, keys, rt, braze, monkeypatch):
    # Polls so slow that only a wake-up can deliver within the test's wait, and no partial-batch flush.
    for name in ("IDLE_SLEEP", "POLL_SLEEP", "IDLE_WAIT"):
        monkeypatch.setattr(deliver, name, 60.0)
    s = rt.settings.replace(flush_delay_ms=600_000)
    webhook_queue.ensure_group(r, keys)
    engine = Engine(build(s), consume_loops=1).start()
    try:
        # A sender found the outbox empty and rests; the others wait for it.
        wait_until(lambda: engine.deliverer._watcher is not None, timeout=10)
        users = [f"U{i:032x}" for i in range(s.braze_track_batch_size)]
        for i in range(0, len(users), 5):
            webhook_queue.enqueue(r, keys, follow_body(users[i:i + 5], 1_700_000_000_000 + i))
        wait_until(lambda: braze.stats()["objects_received"] >= len(users), timeout=20)
    finally:
        engine.stop(timeout=1)  # the senders waiting for the watcher sleep out IDLE_WAIT (60 s here); daemons
