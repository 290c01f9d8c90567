"""The whole pipeline for real: redis-server, Celery worker processes, the Braze sandbox over HTTP."""

from __future__ import annotations

import json

import pytest

from linesync.commands.send_test_webhook import user_event
from sandboxes.braze import BrazeSandbox
from shared import webhook_queue
from shared.keys import Keys
from tests.support.procs import base_env, celery_worker

GROUP = "sg-integration"
API_KEY = "integration-key"


def follow_event(user: str, ts: int, kind: str = "follow", event_id: str | None = None) -> dict:
    """A follow (or ``kind``) event; a fresh webhookEventId unless one is given (redeliveries)."""
    ev = user_event(kind, user, ts)
    if event_id:
        ev["webhookEventId"] = event_id
    return ev


def body(*events) -> bytes:
    return json.dumps({"destination": "Ubot", "events": list(events)}).encode()


class Stack:
    def __init__(self, r, redis_url, braze, tmp_path):
        self.r, self.redis_url, self.braze = r, redis_url, braze
        self.keys = Keys()
        self.workers = []
        self.env_extra: dict[str, str] = {}

    def env(self, **extra):
        return base_env(REDIS_URL=self.redis_url, BRAZE_REST_ENDPOINT=self.braze.url, BRAZE_API_KEY=API_KEY,
                        BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, LINE_CHANNEL_SECRET="s", BRAZE_FLUSH_DELAY_MS="200",
                        LINESYNC_CONSUME_CLAIM_IDLE_MS="2000", BRAZE_RETRY_BASE_SECONDS="0.2",
                        BRAZE_RETRY_MAX_SECONDS="2", RESYNC_ON_START="false", **{**self.env_extra, **extra})

    def start_worker(self, concurrency: int | None = None, **extra):
        w = celery_worker(self.env(**extra), concurrency=concurrency, name=f"w{len(self.workers)}")
        self.workers.append(w)
        return w

    def post(self, raw: bytes) -> str:
        webhook_queue.ensure_group(self.r, self.keys)
        return webhook_queue.enqueue(self.r, self.keys, raw)

    def state_of(self, user: str) -> str | None:
        return self.braze.subscription_state(GROUP, alias_name=user, alias_label="line_id")

    def logs(self) -> str:
        return "\n\n".join(f"== {w.name}\n{w.output()[-3000:]}" for w in self.workers)


@pytest.fixture
def braze():
    sb = BrazeSandbox(api_key=API_KEY).start()
    yield sb
    sb.stop()


@pytest.fixture
def stack(r, redis_url, braze, tmp_path):
    s = Stack(r, redis_url, braze, tmp_path)
    yield s
    for w in s.workers:
        w.kill()  # no need for a warm shutdown: nothing after this test depends on it
