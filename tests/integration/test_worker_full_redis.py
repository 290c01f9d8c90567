"""A worker (re)started while Redis is full (maxmemory, noeviction) comes up, drains and waits calmly.

Redis refuses every write that may grow memory. Celery's own start-up writes
(mingle's broadcast and reply queue, queue bindings, the unacknowledged-task
mutex, reads sent in MULTI) used to be fatal: the worker exited at once —
exactly when it must come up and drain the backlog. Here a real ``linesync
worker`` and ``linesync beat`` start against a real, full redis-server, stay up,
deliver the queued webhooks to the Braze sandbox (the engine's scripts may run
when full), do not spin while Redis stays full, and answer ``celery inspect
ping`` once Redis has room again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis

from shared import webhook_queue
from shared.embedded_redis import EmbeddedRedis
from shared.keys import Keys
from shared.scripts import supports_flags
from tests.integration.conftest import API_KEY, GROUP, body, follow_event
from tests.support.procs import Proc, base_env, wait_until

pytestmark = pytest.mark.integration

USERS = [f"U{i:032x}" for i in range(1, 241)]
# Bytes that keep Redis over maxmemory however much the drain frees (queued bodies are ~100 kB),
# written in pieces so no big query buffer inflates used_memory for a moment.
BALLAST_PIECES, BALLAST_PIECE_BYTES = 30, 100_000
# Redis's limit: this far under what it holds once filled.
OVER_BY = 1_500_000
# Watch the idle, full worker this long (wall seconds) ...
WINDOW_SECONDS = 5.0
# ... allowing it at most this share of one core: a retry loop spinning on the refusals uses all of it
# (measured idle and full: a few per cent).
MAX_CPU_SHARE = 0.5
# ... and at most this many refused writes per second (spinning is thousands; waiting, a few).
MAX_REFUSALS_PER_SECOND = 50
BIN = os.path.dirname(sys.executable)


@pytest.fixture
def full_redis():
    server = EmbeddedRedis().start()  # ours alone: filling it must not disturb other tests
    yield server
    server.cleanup()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def oom_refusals(r: redis.Redis) -> int:
    """Commands Redis refused for memory so far (INFO errorstats, Redis 7)."""
    return int(r.info("errorstats").get("errorstat_OOM", {}).get("count", 0))


def is_full(r: redis.Redis) -> bool:
    try:
        r.set("probe", "x")
    except redis.exceptions.OutOfMemoryError:
        return True
    r.delete("probe")
    return False


def test_a_worker_starts_drains_and_idles_on_a_full_redis_then_answers_ping(full_redis, braze):
    r = redis.Redis.from_url(full_redis.url)
    if not supports_flags(r):
        pytest.skip("this redis-server is older than 7: scripts cannot be flagged allow-oom, so nothing drains")
    keys = Keys()
    webhook_queue.ensure_group(r, keys)
    for i in range(0, len(USERS), 3):
        webhook_queue.enqueue(r, keys, body(*(follow_event(u, 1_000 + i) for u in USERS[i:i + 3])))
    for i in range(BALLAST_PIECES):
        r.set(f"ballast:{i}", os.urandom(BALLAST_PIECE_BYTES))
    r.config_set("maxmemory", str(r.info("memory")["used_memory"] - OVER_BY))
    assert is_full(r)

    env = base_env(REDIS_URL=full_redis.url, BRAZE_REST_ENDPOINT=braze.url, BRAZE_API_KEY=API_KEY,
                   BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false", BRAZE_FLUSH_DELAY_MS="100",
                   LINESYNC_DELIVERY_CONCURRENCY="4", LINESYNC_WORKER_METRICS_PORT="0")
    worker = Proc("worker", [os.path.join(BIN, "linesync"), "worker"], env)
    beat = Proc("beat", [os.path.join(BIN, "linesync"), "beat"], env)
    try:
        worker.wait_for_line("ready.", timeout=60)

        def delivered() -> bool:
            return all(braze.subscription_state(GROUP, alias_name=u, alias_label="line_id") == "subscribed"
                       for u in USERS)
        wait_until(delivered, timeout=90, what="every queued follow delivered while Redis is full",
                   on_fail=lambda: worker.output()[-4000:])
        assert r.xlen(keys.webhooks) == 0
        assert is_full(r), "the test needs Redis still full here"

        cpu0, refused0, t0 = cpu_seconds(worker.proc.pid), oom_refusals(r), time.monotonic()
        time.sleep(WINDOW_SECONDS)
        cpu1, refused1, t1 = cpu_seconds(worker.proc.pid), oom_refusals(r), time.monotonic()
        assert worker.proc.poll() is None, worker.output()[-4000:]
        assert beat.proc.poll() is None, beat.output()[-4000:]
        assert is_full(r)
        print(f"full, idle worker: {cpu1 - cpu0:.2f} CPU-s and {refused1 - refused0} OOM refusals in {t1 - t0:.1f} s")
        assert cpu1 - cpu0 <= MAX_CPU_SHARE * (t1 - t0), f"{cpu1 - cpu0:.2f} CPU-s in {t1 - t0:.1f} s"
        assert refused1 - refused0 <= MAX_REFUSALS_PER_SECOND * (t1 - t0), f"{refused1 - refused0} refusals"
        assert "Unrecoverable error" not in worker.output()

        r.delete(*(f"ballast:{i}" for i in range(BALLAST_PIECES)))  # room again
        assert not is_full(r)

        def pong() -> bool:
            out = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "-t", "3"],
                                 env=env, capture_output=True, text=True, timeout=60)
            return out.returncode == 0 and "pong" in out.stdout
        wait_until(pong, timeout=60, interval=1, what="celery inspect ping answered",
                   on_fail=lambda: worker.output()[-4000:])
        wait_until(lambda: r.exists(keys.redbeat_lock), timeout=30, what="beat took its lock once Redis had room",
                   on_fail=lambda: beat.output()[-4000:])
        assert worker.proc.poll() is None and beat.proc.poll() is None
    finally:
        worker.kill()
        beat.kill()
