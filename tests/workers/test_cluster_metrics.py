"""The cluster-wide figures, read from Redis at scrape time (workers/cluster_metrics.py)."""

import json

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared import state, webhook_queue
from shared.clock import redis_now
from shared.events import make_version
from shared.state import Change
from workers import resync
from workers.cluster_metrics import ClusterCollector


def samples(collector) -> dict:
    reg = CollectorRegistry()
    reg.register(collector)
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_backlog_dead_letters_and_pauses_are_exported(r, keys):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, b'{"destination":"U","events":[]}')
    state.apply(r, keys, [Change("U1", make_version(1, 1, 0, 0), "S", None)], now_ms=1, dedupe_ttl=60,
                counters={"events:follow": 3})
    r.xadd(keys.dlq, {"kind": "track", "reason": "x", "payload": "{}"})
    r.hset(keys.pause("track"), mapping={"until": 10**13, "reason": "HTTP 401", "kind": "auth"})
    m = samples(ClusterCollector(lambda: r, keys))
    assert m[("linesync_redis_up", ())] == 1
    assert m[("linesync_webhook_unconsumed", ())] == 1
    assert m[("linesync_outbox_pending_profiles", ())] == 1
    assert m[("linesync_dead_letters", ())] == 1
    # One series per limiter and kind, 1 for the pause in force; never an empty kind.
    assert m[("linesync_braze_paused", (("kind", "auth"), ("limiter", "track")))] == 1
    assert m[("linesync_braze_paused", (("kind", "rate_limit"), ("limiter", "track")))] == 0
    assert m[("linesync_braze_paused", (("kind", "auth"), ("limiter", "identify")))] == 0
    assert {dict(ls).get("kind") for (n, ls) in m if n == "linesync_braze_paused"} == {
        "rate_limit", "auth", "config"}
    assert m[("linesync_braze_failure_streak", (("limiter", "identify"),))] == 0
    assert m[("linesync_line_events_total", (("type", "follow"),))] == 3
    assert m[("linesync_transitions_total", ())] == 1
    assert m[("linesync_workers_alive", ())] == 0
    assert m[("linesync_resync_running", ())] == 0
    assert ("linesync_resync_last_completed_timestamp_seconds", ()) not in m  # none completed yet
    assert m[("linesync_resync_last_failed", ())] == 0
    # Counted by every worker process itself (linesync_worker_*_total): one name per count.
    assert ("linesync_delivered_objects_total", ()) not in m and ("linesync_dead_lettered_total", ()) not in m


def test_the_age_of_the_oldest_pending_profile(r, keys):
    now_ms = int(redis_now(r) * 1000)
    assert samples(ClusterCollector(lambda: r, keys))[("linesync_outbox_oldest_pending_age_seconds", ())] == 0
    state.apply(r, keys, [Change("U1", make_version(1, 1, 0, 0), "S", None)], now_ms=now_ms - 120_000,
                dedupe_ttl=60)
    state.apply(r, keys, [Change("U2", make_version(2, 1, 0, 0), "S", None)], now_ms=now_ms - 5_000,
                dedupe_ttl=60)
    age = samples(ClusterCollector(lambda: r, keys))[("linesync_outbox_oldest_pending_age_seconds", ())]
    assert 120 <= age < 180


def test_redis_memory_and_its_limit(r, keys):
    before = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", 64 * 1024 * 1024)
    try:
        m = samples(ClusterCollector(lambda: r, keys))
        assert m[("linesync_redis_maxmemory_bytes", ())] == 64 * 1024 * 1024
        assert 0 < m[("linesync_redis_used_memory_bytes", ())] == pytest.approx(
            r.info("memory")["used_memory"], rel=0.5)
        r.config_set("maxmemory", 0)
        assert samples(ClusterCollector(lambda: r, keys))[("linesync_redis_maxmemory_bytes", ())] == 0  # no limit
    finally:
        r.config_set("maxmemory", before)


def test_live_workers_are_those_holding_their_lease(r, keys):
    r.zadd(keys.workers, {"h:1:a": 1, "h:2:b": 2, "h:3:c": 3})
    r.set(keys.worker("h:1:a"), "t", px=10_000)
    r.set(keys.worker("h:3:c"), "t", px=10_000)
    assert samples(ClusterCollector(lambda: r, keys))[("linesync_workers_alive", ())] == 2


def test_resync_progress_and_the_last_completed_run(r, keys):
    finished = {"id": "old", "status": "completed", "finished_ms": 1_700_000_000_000, "followers": 1234}
    r.lpush(keys.resync_history, json.dumps(finished))
    r.lpush(keys.resync_history, json.dumps({"id": "bad", "status": "failed", "finished_ms": 1_700_000_100_000}))
    run, _ = resync.start(r, keys, reason="test", now_ms=1_700_000_200_000, mark_missing=False)
    r.hset(keys.resync_run, mapping={"pages": 7, "followers": 7000})
    m = samples(ClusterCollector(lambda: r, keys))
    assert m[("linesync_resync_running", ())] == 1
    assert m[("linesync_resync_pages", ())] == 7
    assert m[("linesync_resync_followers", ())] == 7000
    # The failed run after it does not count: the alert is on the last *completed* one.
    assert m[("linesync_resync_last_completed_timestamp_seconds", ())] == 1_700_000_000
    assert m[("linesync_resync_last_failed", ())] == 1
    assert m[("linesync_resync_last_completed_followers", ())] == 1234


def test_only_an_active_collector_exports(r, keys):
    active = [False]
    c = ClusterCollector(lambda: r, keys, active=lambda: active[0])
    assert samples(c) == {}
    active[0] = True
    assert samples(c)[("linesync_redis_up", ())] == 1


def test_redis_down_is_a_metric_not_an_error(keys):
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    m = samples(ClusterCollector(lambda: down, keys))
    assert m[("linesync_redis_up", ())] == 0
    assert ("linesync_dead_letters", ()) not in m
