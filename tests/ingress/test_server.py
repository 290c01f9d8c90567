"""The real thing: `linesync ingress` runs gunicorn with several workers."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from linesync.commands.send_test_webhook import follow_event, send_test_webhook, webhook_body
from shared.embedded_redis import free_port
from shared.signature import sign
from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAX_BODY = 4096


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "BRAZE_", "REDIS_", "PROMETHEUS_"))}
    # Import this checkout whatever the editable install maps (and wherever cwd is).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _linesync(*args: str) -> list[str]:
    return [sys.executable, "-m", "linesync.cli", *args]


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _post(port: int, body: bytes, *, signed: bool = True, chunked: bool = False) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["x-line-signature"] = sign(TEST_SECRET, body)
    try:
        if chunked:
            conn.request("POST", "/line/events", body=iter([body[i:i + 1000] for i in range(0, len(body), 1000)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/line/events", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory):
    port, admin_port = free_port(), free_port()
    metrics_dir = tmp_path_factory.mktemp("prom")
    log = (tmp_path_factory.mktemp("log") / "ingress.log").open("wb")  # a pipe could fill up and block
    proc = subprocess.Popen(
        _linesync("ingress", "--bind", f"127.0.0.1:{port}", "--admin-bind", f"127.0.0.1:{admin_port}",
                  "--workers", "2"),
        env=_env(REDIS_URL=redis_server.url, LINE_CHANNEL_SECRET=TEST_SECRET,
                 INGRESS_MAX_BODY_BYTES=str(MAX_BODY), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)),
        cwd=tmp_path_factory.mktemp("cwd"),
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            if _get(port, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("ingress did not start:\n" + Path(log.name).read_text(errors="replace"))
        time.sleep(0.05)
    yield port, proc, metrics_dir, admin_port
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def _accepted_total(admin_port: int) -> float:
    status, text = _get(admin_port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == "linesync_ingress_requests_total" and s.labels == {"outcome": "accepted"}:
                return s.value
    raise AssertionError("no accepted counter in /metrics")


def test_signed_bodies_over_http_and_metrics_sum_every_worker(server, r, keys):
    port, _proc, metrics_dir, admin_port = server
    before = _accepted_total(admin_port)
    sent: list[bytes] = []

    def worker_pids() -> set[str]:
        return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}

    # Concurrent connections land on both workers sooner or later (which worker
    # accepts is the kernel's choice): send bursts until both have counted some.
    for burst in range(25):
        bodies = [webhook_body([follow_event("U" + f"{burst:08x}{i:024x}", 1_700_000_000_000 + i)]) for i in range(40)]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda b: _post(port, b), bodies))
        assert statuses == [200] * 40
        sent += bodies
        if len(worker_pids()) >= 2:
            break
    assert len(worker_pids()) >= 2, f"expected files from two workers, got {worker_pids()}"
    stored = {f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)}
    assert stored == set(sent)
    # Each worker writes its own files; any worker's /metrics sums them all.
    for _ in range(6):
        assert _accepted_total(admin_port) - before == len(sent)


def test_over_http_limits_and_signature(server, r, keys):
    port, _proc, _, _ = server
    small = webhook_body([follow_event("U" + "a" * 32, 1_700_000_000_000)])
    assert _post(port, small, signed=False) == 401
    assert _post(port, small, chunked=True) == 411  # a body comes with its Content-Length
    big = b'{"destination":"U1","events":[]}' + b" " * MAX_BODY
    assert _post(port, big) == 413
    assert _post(port, big, chunked=True) == 411
    assert _get(port, "/readyz")[0] == 200
    assert _post(port, small) == 200
    assert [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)] == [small]  # only what was answered 200


def test_send_test_webhook_against_the_server(server, r, keys, monkeypatch):
    port, _proc, _, _ = server
    monkeypatch.setenv("LINE_CHANNEL_SECRET", TEST_SECRET)
    user = "U" + "b" * 32
    result = CliRunner().invoke(
        send_test_webhook, ["--url", f"http://127.0.0.1:{port}/line/events", "--count", "3", "--user-id", user]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["1/3 follow: 200", "2/3 unfollow: 200", "3/3 follow: 200"]
    assert r.xlen(keys.webhooks) == 3

    monkeypatch.setenv("LINE_CHANNEL_SECRET", "not-the-secret")
    result = CliRunner().invoke(send_test_webhook, ["--url", f"http://127.0.0.1:{port}/line/events"])
    assert result.exit_code != 0
    assert "401" in result.output


def test_sigterm_stops_gracefully(server):
    # Last in this module: it stops the shared server.
    _port, proc, _, _ = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=25) == 0


def test_missing_channel_secret_fails_with_one_line(redis_url, tmp_path):
    proc = subprocess.run(
        _linesync("ingress", "--bind", f"127.0.0.1:{free_port()}"),
        env=_env(REDIS_URL=redis_url), cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "LINE_CHANNEL_SECRET" in lines[0]


def test_malformed_setting_is_named_without_its_value(tmp_path):
    proc = subprocess.run(
        _linesync("ingress"),
        env=_env(REDIS_URL="http://user:hunter2@example.com", LINE_CHANNEL_SECRET="s3cr3t-value"),
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "REDIS_URL" in proc.stderr and "hunter2" not in proc.stderr and "s3cr3t" not in proc.stderr
