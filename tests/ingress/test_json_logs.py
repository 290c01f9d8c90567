"""LINESYNC_LOG_FORMAT=json: every line the ingress writes is JSON, gunicorn's own included."""

from __future__ import annotations

import json

import pytest

from linesync.commands.send_test_webhook import follow_event, webhook_body
from shared.signature import sign
from tests.conftest import TEST_SECRET
from tests.ingress.servers import get, running_ingress

pytestmark = pytest.mark.integration


def _post(port: int, body: bytes, signature: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/line/events", body=body, headers={"X-Line-Signature": signature,
                                                                 "User-Agent": "LineBotWebhook/2.0"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_every_line_of_stderr_and_stdout_is_json(redis_server, r, tmp_path):
    body = webhook_body([follow_event("U" + "d" * 32, 1_700_000_000_000)])
    with running_ingress(redis_server.url, tmp_path, workers=2, LINESYNC_LOG_FORMAT="json",
                         GUNICORN_CMD_ARGS="--access-logfile -") as ing:
        assert _post(ing.port, body, sign(TEST_SECRET, body)) == 200
        assert _post(ing.port, body, "wrong") == 401
        assert get(ing.port, "/metrics")[0] == 404
        assert get(ing.admin_port, "/metrics")[0] == 200
        assert ing.stop() == 0

    records = []
    for stream in (ing.stderr, ing.stdout):
        for line in stream.read_text().splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pytest.fail(f"not JSON, in {stream.name}: {line!r}\n{ing.output()}")
    assert all({"ts", "level", "logger", "msg"} <= rec.keys() for rec in records)
    gunicorn = [rec for rec in records if rec["logger"] == "gunicorn.error"]
    messages = " | ".join(rec["msg"] for rec in gunicorn)
    for expected in ("Starting gunicorn", "Booting worker", "Handling signal: term", "Shutting down"):
        assert expected in messages, messages
    assert all(isinstance(rec["pid"], int) for rec in gunicorn)
    access = [rec for rec in records if rec["logger"] == "gunicorn.access"]
    webhook = [rec for rec in access if rec["path"] == "/line/events"]
    # Two gunicorn workers write their own lines: the two requests' lines may come in either order.
    assert sorted(rec["status"] for rec in webhook) == [200, 401]
    assert all(rec["method"] == "POST" and rec["remote"] == "127.0.0.1" for rec in webhook)
    assert all(rec["user_agent"] == "LineBotWebhook/2.0" and rec["duration_ms"] >= 0 for rec in webhook)
    assert {(rec["path"], rec["status"]) for rec in access} >= {("/metrics", 404), ("/metrics", 200)}
    ours = [rec for rec in records if rec["logger"].startswith("ingress")]
    assert any("unauthorized webhook" in rec["msg"] for rec in ours)
    assert not any(sign(TEST_SECRET, body) in json.dumps(rec) for rec in records)
