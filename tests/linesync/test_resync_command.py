"""`linesync resync --cancel` against a real Redis (no worker needed)."""

import subprocess
import sys

from tests.support.procs import ROOT, base_env
from workers import resync as rs


def run_cli(redis_url, *args):
    return subprocess.run([sys.executable, "-m", "linesync.cli", "resync", *args], cwd=ROOT, text=True,
                          capture_output=True, env=base_env(REDIS_URL=redis_url), timeout=60)


def test_cancel_ends_the_running_run(r, keys, redis_url):
    run, created = rs.start(r, keys, reason="manual", now_ms=1_000, mark_missing=False)
    assert created
    res = run_cli(redis_url, "--cancel")
    assert res.returncode == 0, res.stderr
    last = rs.load(r, keys)
    assert last.id == run.id and last.status == rs.FAILED and "cancelled" in last.error
    again = run_cli(redis_url, "--cancel")
    assert again.returncode == 1 and "no resync is running" in again.stdout


def queued_start_kwargs(r) -> list[dict]:
    """kwargs of the ``linesync.resync.start`` messages waiting in the broker (Redis is Celery's broker)."""
    import base64
    import json

    from shared import queues
    out = []
    [queue] = [k for k in r.keys("*") if k.endswith(queues.TASKS.encode()) and r.type(k) == b"list"]
    for raw in r.lrange(queue, 0, -1):
        msg = json.loads(raw)
        if msg["headers"]["task"] == "linesync.resync.start":
            out.append(json.loads(base64.b64decode(msg["body"]))[1])
    return out


def test_force_mark_missing_is_sent_with_the_request(r, redis_url):
    res = run_cli(redis_url, "--force-mark-missing")
    assert res.returncode == 0, res.stderr
    assert "mark-missing forced" in res.stdout
    [kwargs] = queued_start_kwargs(r)
    assert kwargs["mark_missing"] is True and kwargs["force_mark_missing"] is True
    plain = run_cli(redis_url)
    assert plain.returncode == 0, plain.stderr
    assert sorted(k["force_mark_missing"] for k in queued_start_kwargs(r)) == [False, True]


def test_force_contradicting_no_mark_missing_is_refused(r, redis_url):
    res = run_cli(redis_url, "--force-mark-missing", "--no-mark-missing")
    assert res.returncode == 2 and "contradicts" in res.stderr
