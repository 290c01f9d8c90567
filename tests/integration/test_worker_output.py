"""`linesync worker` and `linesync beat` with LINESYNC_LOG_FORMAT=json write JSON lines only, from start to stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support.procs import ROOT, base_env

pytestmark = pytest.mark.integration


def run_worker(env: dict[str, str], command: str = "worker", ready: str = "ready.") -> tuple[str, list[str], int]:
    """Start `linesync <command>`, wait for the log line holding ``ready``, SIGTERM it: (stdout, stderr lines, status)."""
    p = subprocess.Popen([sys.executable, "-m", "linesync.cli", command], env=env, cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(ready in line for line in list(err)) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(ready in line for line in list(err)), "".join(err)[-3000:]
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        out = p.stdout.read()  # stderr is the reader thread's alone
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    reader.join(10)
    return out, [line.rstrip("\n") for line in err], p.returncode


def test_json_mode_prints_only_json_lines(redis_url, r):
    env = base_env(REDIS_URL=redis_url, BRAZE_REST_ENDPOINT="http://127.0.0.1:9", BRAZE_API_KEY="k",
                   BRAZE_SUBSCRIPTION_GROUP_ID="sg", RESYNC_ON_START="false", LINESYNC_WORKER_METRICS_PORT="0",
                   LINESYNC_LOG_FORMAT="json")
    out, err, status = run_worker(env)
    assert status == 0, "\n".join(err)[-3000:]
    assert out.strip() == ""  # Celery's banner and its "Warm shutdown" line stay off stdout
    records = [json.loads(line) for line in err if line.strip()]  # every stderr line is one JSON object
    messages = [rec["msg"] for rec in records]
    assert any(m.endswith("ready.") for m in messages) and "worker: warm shutdown" in messages


def test_text_mode_keeps_celerys_banner(redis_url, r):
    env = base_env(REDIS_URL=redis_url, BRAZE_REST_ENDPOINT="http://127.0.0.1:9", BRAZE_API_KEY="k",
                   BRAZE_SUBSCRIPTION_GROUP_ID="sg", RESYNC_ON_START="false", LINESYNC_WORKER_METRICS_PORT="0")
    out, err, status = run_worker(env)
    assert status == 0, "\n".join(err)[-3000:]
    assert "[tasks]" in out and "linesync.resync.start" in out


def test_beat_in_json_mode_prints_only_json_lines(redis_url, r):
    env = base_env(REDIS_URL=redis_url, LINESYNC_LOG_FORMAT="json")
    out, err, status = run_worker(env, "beat", ready="Acquired lock")
    assert status == 0, "\n".join(err)[-3000:]
    assert out.strip() == ""  # "celery beat v... is starting." and the banner stay off stdout
    assert "beat: Acquired lock" in [json.loads(line)["msg"] for line in err if line.strip()]
