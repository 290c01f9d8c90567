"""The metrics port of workers and beat (workers/metrics_server.py, workers/health.py): real HTTP."""

import json
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge

from shared.embedded_redis import free_port
from shared.errors import ConfigError
from workers.health import Heartbeat
from workers.metrics_server import serve


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_heartbeat_is_fresh_until_it_is_older_than_its_limit():
    now = [100.0]
    hb = Heartbeat(stale_after=30, monotonic=lambda: now[0])
    assert hb.report() == (True, {"status": "starting", "heartbeat_age_s": 0.0, "stale_after_s": 30})
    hb.beat("ok")
    now[0] = 129.96
    assert hb.report()[0] and hb.report()[1]["heartbeat_age_s"] == 30.0
    now[0] = 131
    assert hb.report() == (False, {"status": "stale", "heartbeat_age_s": 31.0, "stale_after_s": 30})
    hb.beat("redis_down")  # a pass while Redis is away still counts: the process is not stuck
    assert hb.report() == (True, {"status": "redis_down", "heartbeat_age_s": 0.0, "stale_after_s": 30})


def test_metrics_and_healthz_on_one_port():
    reg = CollectorRegistry()
    Gauge("linesync_test_gauge", "a gauge", registry=reg).set(7)
    now = [0.0]
    hb = Heartbeat(stale_after=30, monotonic=lambda: now[0])
    server = serve(free_port(), reg, hb.report, setting="LINESYNC_WORKER_METRICS_PORT")
    try:
        status, body = get(server.port, "/metrics")
        assert status == 200 and b"linesync_test_gauge 7.0" in body
        status, body = get(server.port, "/healthz")
        assert status == 200 and json.loads(body)["heartbeat_age_s"] == 0
        now[0] = 45
        status, body = get(server.port, "/healthz")
        assert status == 503 and json.loads(body) == {"status": "stale", "heartbeat_age_s": 45.0, "stale_after_s": 30}
        assert get(server.port, "/status")[0] == 404
    finally:
        server.close()


def test_a_taken_port_is_an_error_naming_the_setting_never_another_port():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            serve(busy, CollectorRegistry(), Heartbeat().report, setting="LINESYNC_BEAT_METRICS_PORT")
    assert err.value.variable == "LINESYNC_BEAT_METRICS_PORT"
    assert str(err.value).startswith(f"LINESYNC_BEAT_METRICS_PORT: port {busy} is taken")


def test_port_zero_is_off():
    assert serve(0, CollectorRegistry(), Heartbeat().report, setting="LINESYNC_WORKER_METRICS_PORT") is None
