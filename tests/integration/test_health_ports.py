"""Workers and beat serve /metrics and /healthz on their own port; a taken port stops them naming it."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request

import pytest

from shared.embedded_redis import free_port
from tests.support.procs import Proc, celery_beat, celery_worker, wait_until

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def exits(p: Proc, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while p.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.proc.returncode is not None, p.output()[-3000:]
    return p.proc.returncode


def test_a_worker_answers_healthz_and_metrics_on_its_port(stack):
    port = free_port()
    w = celery_worker(stack.env(LINESYNC_WORKER_METRICS_PORT=str(port)), concurrency=2)
    stack.workers.append(w)
    wait_until(lambda: get(port, "/healthz")[0] == 200, timeout=30, on_fail=w.output)
    body = json.loads(get(port, "/healthz")[1])
    assert body["status"] in ("starting", "ok") and 0 <= body["heartbeat_age_s"] < 30
    status, text = get(port, "/metrics")
    assert status == 200 and "linesync_worker_cluster_exporter" in text


def test_a_taken_worker_port_stops_the_worker_naming_the_setting(stack):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        p = Proc("taken", [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO",
                           "-n", "taken@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                 stack.env(LINESYNC_WORKER_METRICS_PORT=str(busy)))
        try:
            assert exits(p) == 2, p.output()[-3000:]
        finally:
            p.kill()
    assert f"LINESYNC_WORKER_METRICS_PORT: port {busy} is taken" in p.output()


def test_beat_active_and_standby_both_answer_healthz(stack):
    ports = free_port(), free_port()
    beats = [celery_beat(stack.env(LINESYNC_BEAT_METRICS_PORT=str(port)), name=f"beat{i}")
             for i, port in enumerate(ports)]
    try:
        wait_until(lambda: all(get(p, "/healthz")[0] == 200 for p in ports), timeout=30,
                   on_fail=lambda: "\n".join(b.output()[-2000:] for b in beats))
        wait_until(lambda: sorted(json.loads(get(p, "/healthz")[1])["status"] for p in ports)
                   == ["active", "standby"], timeout=30,
                   on_fail=lambda: "\n".join(b.output()[-2000:] for b in beats))
        held = sorted(get(p, "/metrics")[1].count("linesync_beat_lock_held 1.0") for p in ports)
        assert held == [0, 1]
    finally:
        for b in beats:
            b.stop()


def test_a_taken_beat_port_stops_beat_naming_the_setting(stack):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        p = celery_beat(stack.env(LINESYNC_BEAT_METRICS_PORT=str(busy)))
        try:
            assert exits(p) != 0, p.output()[-3000:]
        finally:
            p.kill()
    assert f"LINESYNC_BEAT_METRICS_PORT: port {busy} is taken" in p.output()
