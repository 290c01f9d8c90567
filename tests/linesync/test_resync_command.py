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
