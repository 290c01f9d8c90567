"""REDIS_URL=sentinel://… and rediss://… for every process, against real servers started by the test.

Sentinel: a primary, a replica and three sentinels; the ingress, a worker, beat
and the CLI all use the sentinel URL. The primary is failed over (``SENTINEL
FAILOVER``) during a burst of signed webhooks, with LINESYNC_REDIS_DURABILITY=
replicas (the ingress answers 200 once a replica has the body): every body
answered 200 reaches the Braze sandbox once the new primary is up (Braze is
down meanwhile, so nothing is delivered from the old primary). A Sentinel
failover is not coordinated: the old primary accepts writes until the
sentinels demote it a few seconds later, and drops them then; those are the
bodies the ingress answers 503 (no replica confirms them), which LINE redelivers.

TLS: the same processes against a TLS-only redis-server with a self-signed CA.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis

from linesync.commands.send_test_webhook import follow_event
from shared.embedded_redis import free_port
from shared.signature import sign
from tests.integration.conftest import API_KEY, GROUP
from tests.support.procs import Proc, base_env, wait_until
from tests.support.redis_topologies import SentinelTopology, TlsRedis

pytestmark = pytest.mark.integration

SECRET = "sentinel-test-secret"
BIN = os.path.dirname(sys.executable)
BURST = 150
# The failover starts once this many bodies were posted.
FAILOVER_AFTER = 40


def linesync(*args: str) -> list[str]:
    return [os.path.join(BIN, "linesync"), *args]


def post(port: int, raw: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/line/events", body=raw, headers={
            "Content-Type": "application/json", "X-Line-Signature": sign(SECRET, raw)})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


class Stack:
    """ingress + worker + beat, all on ``redis_url``."""

    def __init__(self, redis_url: str, braze, **extra: str):
        self.port, self.admin = free_port(), free_port()
        self.env = base_env(REDIS_URL=redis_url, BRAZE_REST_ENDPOINT=braze.url, BRAZE_API_KEY=API_KEY,
                            BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, LINE_CHANNEL_SECRET=SECRET, RESYNC_ON_START="false",
                            BRAZE_FLUSH_DELAY_MS="100", LINESYNC_CONSUME_CLAIM_IDLE_MS="2000",
                            LINESYNC_WORKER_METRICS_PORT="0", LINESYNC_DELIVERY_CONCURRENCY="8",
                            BRAZE_RETRY_BASE_SECONDS="0.2", BRAZE_RETRY_MAX_SECONDS="2", BRAZE_PROBE_MAX_SECONDS="1",
                            **extra)
        self.procs = [
            Proc("ingress", linesync("ingress", "--bind", f"127.0.0.1:{self.port}",
                                     "--admin-bind", f"127.0.0.1:{self.admin}", "--workers", "1"), self.env),
            Proc("worker", linesync("worker"), self.env),
            Proc("beat", linesync("beat"), self.env),
        ]
        self.procs[1].wait_for_line("ready.", timeout=60)
        wait_until(lambda: healthy(self.port), timeout=30, what="the ingress", on_fail=self.logs)

    def logs(self) -> str:
        return "\n\n".join(f"== {p.name}\n{p.output()[-3000:]}" for p in self.procs)

    def alive(self) -> None:
        for p in self.procs:
            assert p.proc.poll() is None, f"{p.name} exited\n{self.logs()}"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(linesync(*args), env=self.env, capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        for p in self.procs:
            p.kill()


def subscribed(braze, user: str) -> bool:
    return braze.subscription_state(GROUP, alias_name=user, alias_label="line_id") == "subscribed"


def test_a_sentinel_failover_during_a_burst_loses_no_webhook_answered_200(braze):
    topo = SentinelTopology().start()
    stack = None
    try:
        stack = Stack(topo.url, braze, LINESYNC_REDIS_DURABILITY="replicas")
        users = [f"U{i:032x}" for i in range(1, BURST + 1)]
        status: dict[str, int] = {}
        posted = threading.Event()

        def burst() -> None:
            for i, user in enumerate(users):
                raw = json.dumps({"destination": "Ubot", "events": [follow_event(user, 1_700_000_000_000 + i)]})
                status[user] = post(stack.port, raw.encode())
                if i + 1 == FAILOVER_AFTER:
                    posted.set()
                time.sleep(0.02)
        t = threading.Thread(target=burst)
        t.start()
        assert posted.wait(60)
        # Braze is down across the failover, so the worker cannot deliver what the old primary
        # takes after the promotion before that primary drops it on its demotion.
        braze.set_faults(status=503, count=-1)
        old = topo.primary_port()
        new = topo.failover()
        t.join(120)
        topo.wait_old_primary_demoted(old)
        braze.clear_faults()

        ok = [u for u in users if status.get(u) == 200]
        print(f"burst: {len(ok)} answered 200, {BURST - len(ok)} answered 503 (failover to port {new})")
        assert len(ok) >= FAILOVER_AFTER // 2, status  # the burst was mostly accepted ...
        assert set(status.values()) <= {200, 503}, status  # ... and the rest refused, never an error page
        wait_until(lambda: all(subscribed(braze, u) for u in ok), timeout=120,
                   what="every body answered 200 delivered to Braze after the failover",
                   on_fail=lambda: f"{sum(not subscribed(braze, u) for u in ok)} of {len(ok)} missing\n{stack.logs()}")
        assert redis.Redis(port=new).info("replication")["role"] == "master"

        # After the failover, the stack carries on on the new primary: a new follow goes through ...
        late = "U" + "f" * 32
        raw = json.dumps({"destination": "Ubot", "events": [follow_event(late, 1_800_000_000_000)]}).encode()
        wait_until(lambda: post(stack.port, raw) == 200, timeout=30, what="the ingress on the new primary",
                   on_fail=stack.logs)
        wait_until(lambda: subscribed(braze, late), timeout=60, what="delivery on the new primary",
                   on_fail=stack.logs)
        stack.alive()  # ... worker and beat rode it out ...
        wait_until(lambda: redis.Redis(port=new).exists("{linesync}:redbeat:lock"), timeout=60,
                   what="beat's lock on the new primary", on_fail=stack.logs)
        status_cmd = stack.cli("status")  # ... the CLI reaches the new primary through the sentinels ...
        assert status_cmd.returncode == 0, status_cmd.stderr + status_cmd.stdout
        ping = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "-t", "5"],
                              env=stack.env, capture_output=True, text=True, timeout=60)
        assert "pong" in ping.stdout, ping.stdout + ping.stderr  # ... and Celery's broker (kombu's sentinel transport)
    except AssertionError:
        print(topo.logs())
        raise
    finally:
        if stack:
            stack.stop()
        topo.stop()


def test_a_password_protected_primary_behind_sentinels_is_followed_across_a_failover():
    topo = SentinelTopology(password="s3cr:et").start()
    try:
        from shared.redis_conn import connect
        assert "s3cr%3Aet@" in topo.url
        r = connect(topo.url, socket_timeout=2.0)
        r.set("before", 1)
        topo.failover()
        wait_until(lambda: _set_ok(r), timeout=30, what="a write on the new primary")
        assert r.get("before") == b"1"
    finally:
        topo.stop()


def _set_ok(r) -> bool:
    try:
        return bool(r.set("after", 1))
    except redis.RedisError:
        return False


def test_every_process_works_over_tls(braze):
    reason = TlsRedis.unavailable_reason()
    if reason:
        pytest.skip(reason)
    tls = TlsRedis().start()
    stack = None
    try:
        stack = Stack(tls.url, braze)
        user = "U" + "e" * 32
        raw = json.dumps({"destination": "Ubot", "events": [follow_event(user, 1_700_000_000_000)]}).encode()
        assert post(stack.port, raw) == 200
        wait_until(lambda: subscribed(braze, user), timeout=60, what="delivery over TLS", on_fail=stack.logs)
        r = redis.Redis.from_url(tls.url)
        wait_until(lambda: r.exists("{linesync}:redbeat:lock"), timeout=30, what="beat's lock over TLS",
                   on_fail=stack.logs)
        stack.alive()
        out = stack.cli("status")
        assert out.returncode == 0, out.stderr + out.stdout
        ping = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "-t", "5"],
                              env=stack.env, capture_output=True, text=True, timeout=60)
        assert "pong" in ping.stdout, ping.stdout + ping.stderr
    finally:
        if stack:
            stack.stop()
        tls.stop()
