"""Follower resync end to end: real Celery worker and beat processes, Redis, LINE and Braze sandboxes over HTTP."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from sandboxes.braze import BrazeSandbox
from sandboxes.line import LineSandbox, follower_id
from shared import outbox, state
from shared.keys import Keys
from tests.support.procs import ROOT, base_env, celery_beat, celery_worker, wait_until
from workers import resync

pytestmark = pytest.mark.integration

LINE_TOKEN = "integration-line-token"
BRAZE_KEY = "integration-braze-key"
keys = Keys()


@pytest.fixture
def line_sb():
    sb = LineSandbox(access_token=LINE_TOKEN, followers=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def braze_sb():
    sb = BrazeSandbox(api_key=BRAZE_KEY).start()
    yield sb
    sb.stop()


@pytest.fixture
def env(redis_url, line_sb, braze_sb):
    return base_env(REDIS_URL=redis_url, LINE_API_BASE_URL=line_sb.url, LINE_CHANNEL_ACCESS_TOKEN=LINE_TOKEN,
                    BRAZE_REST_ENDPOINT=braze_sb.url, BRAZE_API_KEY=BRAZE_KEY,
                    BRAZE_SUBSCRIPTION_GROUP_ID="sg-resync", RESYNC_ON_START="false")


def worker(env, name):
    """A worker process as operators run it: the whole pipeline, resync tasks included."""
    return celery_worker(env, concurrency=8, name=name)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.kill()


def run_of(r):
    return resync.load(r, keys)


def cli(env, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linesync.cli", "resync", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def logs(procs) -> str:
    return "\n\n".join(f"== {p.name}\n{p.output()[-3000:]}" for p in procs)


def test_a_killed_worker_s_run_resumes_from_its_checkpoint(r, env, line_sb, procs):
    n = 20_000
    line_sb.set_followers(n)
    line_sb.set_faults(latency_ms=150)  # ~20 pages x 150 ms: a few seconds per pass
    procs.append(worker(env, "w1"))
    res = cli(env)
    assert res.returncode == 0 and "Resync requested" in res.stdout, res.stderr
    wait_until(lambda: (run_of(r) is not None and run_of(r).pages >= 4), timeout=30, what="4 pages",
               on_fail=lambda: logs(procs))
    procs[0].kill()  # SIGKILL mid-pass: no cleanup, the lease just stops being renewed
    killed_at = run_of(r)
    assert killed_at.status == "running" and killed_at.pages < math.ceil(n / 1000)
    procs.append(worker(env, "w2"))
    wait_until(lambda: run_of(r).status != "running", timeout=45, what="run to end", on_fail=lambda: logs(procs))
    done = run_of(r)
    assert done.status == "completed", done.error
    assert done.id == killed_at.id and done.started_ms == killed_at.started_ms
    assert (done.pages, done.followers, done.restarts) == (math.ceil(n / 1000), n, 0)
    states = [state.get(r, keys, follower_id(j)) for j in range(n)]  # through shared.state: its layout is its own
    assert len(states) == n and all(s is not None and s[1] == "S" for s in states)
    assert not r.exists(keys.resync_lock)


def test_cli_wait_reports_completion_and_failure(r, env, line_sb, procs):
    line_sb.set_followers(3_500)
    line_sb.set_faults(latency_ms=100)
    procs.append(worker(env, "w1"))
    ok = cli(env, "--wait")
    assert ok.returncode == 0, ok.stdout + ok.stderr + logs(procs)
    assert "pages 4" in ok.stdout and "followers 3,500" in ok.stdout and "/s" in ok.stdout
    assert "Resync completed: 3,500 followers in 4 pages" in ok.stdout

    line_sb.set_faults(forbidden=True)
    bad = cli(env, "--wait")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Resync failed" in bad.stderr and "verified or premium" in bad.stderr
    assert LINE_TOKEN not in bad.stdout + bad.stderr
    assert line_sb.stats()["requests"]["/v2/bot/followers/ids"]["403"] == 1  # reported, not retried
    last = resync.resync_status(r, keys)["last"]
    assert last["status"] == "failed" and "403" in last["error"]


def test_two_beat_replicas_schedule_each_run_once(r, env, line_sb, procs):
    line_sb.set_followers(10)
    beat_env = {**env, "RESYNC_SCHEDULE": "every 3s"}
    procs.append(worker(beat_env, "w1"))
    procs.append(celery_beat(beat_env, name="beat1"))
    procs.append(celery_beat(beat_env, name="beat2"))

    def calls() -> int:
        return int(r.hget(keys.stats, "resync_start_calls") or 0)

    wait_until(lambda: calls() >= 1, timeout=30, what="a scheduled resync", on_fail=lambda: logs(procs))
    first = calls()
    window = 9.0
    time.sleep(window)
    scheduled = calls() - first
    # One beat sends ~window/3 = 3 in the window; two beats without the lock would send ~6.
    assert 2 <= scheduled <= window / 3 + 1, (scheduled, logs(procs))
    assert resync.resync_status(r, keys)["last"]["reason"] == "schedule"


def test_a_resync_of_an_unchanged_follower_list_sends_nothing_to_braze(r, env, line_sb, braze_sb, procs):
    n = 3_000
    line_sb.set_followers(n)
    procs.append(worker(env, "w1"))
    first = cli(env, "--wait")
    assert first.returncode == 0, first.stdout + first.stderr + logs(procs)
    assert f"{n:,} newly subscribed" in first.stdout
    wait_until(lambda: braze_sb.stats()["profiles"] == n and outbox.sizes(r, keys)["pending_profiles"] == 0, timeout=60,
               what="every follower delivered", on_fail=lambda: logs(procs))
    time.sleep(1.0)  # the last batch's answer is settled
    calls = braze_sb.stats()["requests_total"]
    assert calls >= n // 75

    second = cli(env, "--wait")
    assert second.returncode == 0, second.stdout + second.stderr + logs(procs)
    assert f"Resync completed: {n:,} followers" in second.stdout and "0 newly subscribed" in second.stdout
    assert outbox.sizes(r, keys)["pending_profiles"] == 0  # nobody queued for Braze
    time.sleep(2.0)  # > BRAZE_FLUSH_DELAY_MS: a wrong implementation would have sent by now
    assert braze_sb.stats()["requests_total"] == calls
    assert resync.resync_status(r, keys)["last"]["subscribed"] == 0
