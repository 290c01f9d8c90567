"""`linesync sandbox braze|line` as a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from shared.embedded_redis import free_port


def _run(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linesync.cli", "sandbox", *args, "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=0.5).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"sandbox did not start: {proc.communicate()[1].decode()}")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    return err.decode()


def test_braze_sandbox_command():
    proc, url = _run("braze", "--api-key", "k", "--rate-limit", "2/60s", "--batch-size", "3")
    try:
        body = {"attributes": [{"external_id": "c1", "native_line_id": "U1"}]}
        r = requests.post(f"{url}/users/track", json=body, headers={"Authorization": "Bearer k"})
        assert r.status_code == 201 and r.headers["X-RateLimit-Limit"] == "2"
        assert requests.post(f"{url}/users/track", json={"attributes": [{"external_id": "c"}] * 4},
                             headers={"Authorization": "Bearer k"}).status_code == 400
        assert requests.post(f"{url}/users/track", json=body, headers={"Authorization": "Bearer k"}).status_code == 429
        assert requests.get(f"{url}/_sandbox/profile", params={"external_id": "c1"}).json()["native_line_id"] == "U1"
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    assert "listening on" in err


def test_braze_sandbox_command_compact():
    proc, url = _run("braze", "--api-key", "k", "--compact")
    try:
        body = {"attributes": [{"external_id": "c1", "native_line_id": "U1"}]}
        assert requests.post(f"{url}/users/track", json=body, headers={"Authorization": "Bearer k"}).status_code == 201
        stats = requests.get(f"{url}/_sandbox/stats").json()
        assert stats["compact"] is True and stats["profiles"] == 1
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    assert "compact" in err


def test_line_sandbox_command():
    proc, url = _run("line", "--access-token", "t", "--followers", "1500")
    try:
        r = requests.get(f"{url}/v2/bot/followers/ids", headers={"Authorization": "Bearer t"})
        assert len(r.json()["userIds"]) == 1000 and r.json()["next"]
    finally:
        _stop(proc)
    assert proc.returncode == 0


def test_bad_bind_is_rejected():
    r = subprocess.run([sys.executable, "-m", "linesync.cli", "sandbox", "braze", "--bind", "nope"],
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and b"HOST:PORT" in r.stderr
