"""A worker process's /metrics (workers/metrics.py): served by its engine over HTTP, one cluster exporter."""

import json
import logging
import socket
import urllib.error
import urllib.request

import pytest

from prometheus_client.parser import text_string_to_metric_families

from shared import outbox, webhook_queue
from shared.clock import FakeClock
from shared.config import RateLimit
from shared.embedded_redis import free_port
from shared.errors import ConfigError
from shared.limiter import Limiter
from tests.support.procs import wait_until
from workers import braze as b
from workers import engine as engine_mod
from workers import metrics
from workers.engine import Engine
from workers.sending import Sender



def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(m: dict, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in m.items() if n == name and set(labels.items()) <= set(ls))


def follow_body(users, ts):
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": ts, "webhookEventId": f"E{u}", "mode": "active",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


def test_engines_serve_their_metrics_and_one_exports_the_cluster_figures(r, keys, rt, braze, monkeypatch):
    monkeypatch.setattr(engine_mod, "HEARTBEAT", 0.2)
    users = [f"U{i:032x}" for i in range(300)]
    webhook_queue.ensure_group(r, keys)
    for i in range(0, len(users), 3):
        webhook_queue.enqueue(r, keys, follow_body(users[i:i + 3], 1_700_000_000_000 + i))
    before = metrics.DELIVERED._value.get()
    first = Engine(rt, consume_loops=1, metrics_port=free_port()).start()
    second = Engine(rt, consume_loops=1, metrics_port=free_port()).start()
    try:
        wait_until(lambda: braze.stats()["objects_received"] >= len(users) and outbox.sizes(r, keys)["inflight_profiles"] == 0,
                   timeout=30)
        assert first.exporting and not second.exporting
        assert r.get(keys.metrics_exporter).decode() == first.exporter.token
        a, b_ = scrape(first.metrics_server.port), scrape(second.metrics_server.port)
        # This process's own figures, on both.
        for m in (a, b_):
            assert total(m, "linesync_braze_request_duration_seconds_count", endpoint="/users/track",
                         status="201") >= 1
            assert ("linesync_braze_request_duration_seconds_bucket",
                    (("endpoint", "/users/track"), ("le", "10.0"), ("status", "201"))) in m
            assert total(m, "linesync_braze_track_batch_objects_count") >= 1
            assert total(m, "linesync_braze_track_batch_objects_sum") >= len(users)
            assert m[("linesync_braze_requests_in_flight", (("endpoint", "/users/track"),))] == 0
            assert total(m, "linesync_worker_delivered_objects_total") - before >= len(users)
            assert total(m, "linesync_braze_limiter_wait_seconds_count", limiter="track") >= 1
            assert ("process_cpu_seconds_total", ()) in m
        # The cluster figures, from the exporter only.
        assert a[("linesync_redis_up", ())] == 1 and a[("linesync_workers_alive", ())] == 2
        assert a[("linesync_outbox_oldest_pending_age_seconds", ())] == 0
        assert ("linesync_delivered_objects_total", ()) not in a  # one name per count: the worker's own
        assert ("linesync_redis_up", ()) not in b_ and ("linesync_webhook_unconsumed", ()) not in b_
    finally:
        first.stop()
    try:
        # The exporter is gone: the other process takes over at its next heartbeat.
        wait_until(lambda: second.exporting, timeout=10)
        m = scrape(second.metrics_server.port)
        assert m[("linesync_redis_up", ())] == 1 and m[("linesync_workers_alive", ())] == 1
        assert m[("linesync_worker_cluster_exporter", ())] == 1
    finally:
        second.stop()
    assert not r.exists(keys.metrics_exporter)


def test_an_engine_without_metrics_never_exports_the_cluster_figures(r, keys, rt):
    e = Engine(rt, consume_loops=1, metrics_port=0).start()
    try:
        assert e.metrics_server is None and not e.exporting
        assert not r.exists(keys.metrics_exporter)  # a process that serves nothing must not hold it
    finally:
        e.stop()


def test_a_taken_port_stops_the_engine_naming_the_setting(rt, r, keys):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        e = Engine(rt, consume_loops=1, metrics_port=busy)
        with pytest.raises(ConfigError) as err:
            e.start()
    assert err.value.variable == "LINESYNC_WORKER_METRICS_PORT" and f"port {busy} is taken" in str(err.value)
    assert not e._threads and not r.exists(keys.worker(e.name))  # nothing started, nothing registered


def test_an_engine_answers_healthz_with_its_heartbeat(rt, monkeypatch):
    monkeypatch.setattr(engine_mod, "HEARTBEAT", 0.1)
    e = Engine(rt, consume_loops=1, metrics_port=free_port()).start()
    try:
        wait_until(lambda: e.heartbeat.state == "ok", timeout=10)
        with urllib.request.urlopen(f"http://127.0.0.1:{e.metrics_server.port}/healthz", timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["status"] == "ok" and 0 <= body["heartbeat_age_s"] < 30 and body["worker"] == e.name
        e.heartbeat.stale_after = 0.0  # as if the heartbeat loop were stuck
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{e.metrics_server.port}/healthz", timeout=5)
        assert err.value.code == 503 and json.loads(err.value.read())["status"] == "stale"
    finally:
        e.stop()


def test_a_request_without_an_answer_is_status_error():
    def error_count():
        return metrics.REQUEST_SECONDS.labels(endpoint="/users/identify", status="error")._sum.get(), \
            sum(bkt.get() for bkt in metrics.REQUEST_SECONDS.labels(endpoint="/users/identify",
                                                                    status="error")._buckets)
    before = error_count()[1]
    client = b.BrazeClient(f"http://127.0.0.1:{free_port()}", "k", timeout=1.0)  # nothing listens
    assert isinstance(client.post("/users/identify", {"aliases_to_identify": []}, now=0), b.Retryable)
    assert error_count()[1] == before + 1
    assert metrics.IN_FLIGHT.labels(endpoint="/users/identify")._value.get() == 0


def test_pauses_breaker_failures_and_the_gate_are_counted(r, keys):
    clock = FakeClock(1_700_000_000.0)
    s = Sender(Limiter(r, keys, "identify", RateLimit(1000, 1.0)), clock, auth_retry_seconds=60, what="identify")

    def count(metric, **labels):
        return metric.labels(**labels)._value.get()

    pauses, failures = count(metrics.PAUSES, limiter="identify", kind="auth"), \
        count(metrics.BREAKER_FAILURES, limiter="identify")
    s.send(lambda: b.AuthFailure("HTTP 401"))
    assert count(metrics.PAUSES, limiter="identify", kind="auth") == pauses + 1
    assert s.gate().wait_ms and count(metrics.GATE_CLOSED, limiter="identify") == 1
    r.delete(keys.pause("identify"))
    assert s.gate().wait_ms == 0 and count(metrics.GATE_CLOSED, limiter="identify") == 0
    s.send(lambda: b.Retryable("HTTP 503"))
    assert count(metrics.BREAKER_FAILURES, limiter="identify") == failures + 1
    assert count(metrics.GATE_CLOSED, limiter="identify") == 1
