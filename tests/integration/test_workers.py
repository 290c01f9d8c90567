"""Worker processes as operators run them: plain `celery -A workers worker`, several of them, prefixes."""

from __future__ import annotations

import sys
import time

import pytest

from sandboxes.braze import BrazeSandbox
from shared import webhook_queue
from shared.config import Settings
from shared.keys import Keys
from tests.integration.conftest import API_KEY, GROUP, body, follow_event
from tests.support.procs import Proc, base_env, celery_worker, wait_until
from workers.celery_app import create_app

pytestmark = pytest.mark.integration


def users(tag: str, n: int) -> list[str]:
    return [f"U{tag}{i:030x}"[:33] for i in range(n)]


def post_all(r, keys: Keys, us: list[str], ts: int = 1_700_000_000_000) -> None:
    webhook_queue.ensure_group(r, keys)
    for i in range(0, len(us), 5):
        webhook_queue.enqueue(r, keys, body(*(follow_event(u, ts + i) for u in us[i:i + 5])))


def all_subscribed(sandbox, us):
    return lambda: all(sandbox.subscription_state(GROUP, alias_name=u, alias_label="line_id") == "subscribed"
                       for u in us)


def test_two_workers_share_the_work_and_never_exceed_the_rate_limit(stack):
    stack.braze.configure(rate_limit="10/1s")
    env = dict(BRAZE_TRACK_RATE_LIMIT="10/1s", BRAZE_TRACK_BATCH_SIZE="5")
    stack.start_worker(concurrency=16, **env)
    stack.start_worker(concurrency=16, **env)
    us = users("rate", 300)
    post_all(stack.r, stack.keys, us)
    wait_until(all_subscribed(stack.braze, us), timeout=90, on_fail=stack.logs)
    log = [e for e in stack.braze.requests() if e["path"] == "/users/track"]
    assert stack.braze.stats()["rate_limited"] == 0
    # Spaced evenly by one limiter for both processes: no 1-second window, however aligned,
    # holds more than the limit (+1 for the jitter of arrival times over loopback).
    times = sorted(e["t"] for e in log)
    worst = max(sum(1 for t in times if a <= t < a + 1.0) for a in times)
    assert worst <= 11, worst
    # Both processes did part of the work.
    names = {c["name"].decode().rpartition("/")[0]
             for c in stack.r.xinfo_consumers(stack.keys.webhooks, "workers")}
    assert len(names) == 2


def test_killing_one_of_two_workers_loses_nothing(stack):
    a = stack.start_worker(concurrency=8)
    stack.start_worker(concurrency=8)
    us = users("kill", 600)
    post_all(stack.r, stack.keys, us[:300])
    a.kill()
    post_all(stack.r, stack.keys, us[300:], ts=1_800_000_000_000)
    wait_until(all_subscribed(stack.braze, us), timeout=120, on_fail=stack.logs)


def test_installs_with_different_prefixes_share_one_redis_and_see_nothing_of_each_other(r, redis_url, stack):
    other_braze = BrazeSandbox(api_key=API_KEY).start()
    try:
        stack.start_worker(LINESYNC_KEY_PREFIX="alpha")
        beta = celery_worker(base_env(REDIS_URL=redis_url, BRAZE_REST_ENDPOINT=other_braze.url, BRAZE_API_KEY=API_KEY,
                                      BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false",
                                      BRAZE_FLUSH_DELAY_MS="200", LINESYNC_KEY_PREFIX="beta"), name="beta")
        stack.workers.append(beta)
        ua, ub = users("a", 50), users("b", 50)
        post_all(r, Keys("alpha"), ua)
        post_all(r, Keys("beta"), ub)
        wait_until(all_subscribed(stack.braze, ua), timeout=60, on_fail=stack.logs)
        wait_until(all_subscribed(other_braze, ub), timeout=60, on_fail=stack.logs)
        assert {p["aliases"][0]["alias_name"] for p in stack.braze.profiles()} == set(ua)
        assert {p["aliases"][0]["alias_name"] for p in other_braze.profiles()} == set(ub)
        # A job sent through alpha's Celery app runs on alpha's worker only.
        app = create_app(Settings(redis_url=redis_url, key_prefix="alpha"))
        app.send_task("linesync.resync.start", kwargs={"reason": "isolation-test"})
        wait_until(lambda: r.hexists(Keys("alpha").resync_run, "id"), timeout=30, on_fail=stack.logs)
        assert not r.exists(Keys("beta").resync_run)
        # Every key of either install, Celery's and beat's included, carries its prefix.
        strays = [k for k in r.keys("*") if not k.startswith((b"{alpha}", b"{beta}"))]
        assert strays == []
    finally:
        other_braze.stop()


def test_a_worker_refuses_an_evicting_redis_in_one_line(redis_url, r, stack):
    before = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        p = Proc("evict", [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO",
                           "-n", "evict@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                 stack.env())
        deadline = time.monotonic() + 60
        while p.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert p.proc.returncode == 2, p.output()[-3000:]
        assert "maxmemory-policy is allkeys-lru" in p.output()
    finally:
        r.config_set("maxmemory-policy", before)
