"""POST /line/events: signature, size, envelope, storage (real Redis)."""

from __future__ import annotations

import io
import json

import pytest

from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET
from shared.signature import sign


def stream(r, key):
    return [fields for _id, fields in r.xrange(key)]


def test_signed_body_is_stored_byte_for_byte(post, r, keys, two_event_body):
    resp = post(two_event_body)
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
    entries = stream(r, keys.webhooks)
    assert len(entries) == 1
    assert entries[0][BODY_FIELD] == two_event_body
    assert int(entries[0][b"received_ms"]) > 0


def test_body_bytes_are_kept_exactly_even_when_json_is_unusual(post, r, keys):
    # Whitespace, key order, escapes and non-ASCII must survive untouched.
    body = '{ "events" : [ {"timestamp":1,"type":"follow","x":"\\u00e9é"} ],\n "destination":"U1" }'.encode()
    assert post(body).status_code == 200
    assert stream(r, keys.webhooks)[0][BODY_FIELD] == body


@pytest.mark.parametrize("signature", [None, "", "not-base64!", sign("other-secret", b"x")])
def test_missing_or_wrong_signature_is_401_and_nothing_stored(post, r, keys, follow_body, signature):
    resp = post(follow_body, signature=signature)
    assert resp.status_code == 401
    assert resp.get_json() == {"error": "invalid signature"}
    assert r.xlen(keys.webhooks) == 0 and r.xlen(keys.rejected) == 0


def test_signature_of_another_body_is_401(post, r, keys, follow_body):
    resp = post(follow_body, signature=sign(TEST_SECRET, follow_body + b" "))
    assert resp.status_code == 401
    assert r.xlen(keys.webhooks) == 0


@pytest.mark.parametrize("header", ["x-line-signature", "X-LINE-SIGNATURE", "X-Line-Signature"])
def test_signature_header_name_is_case_insensitive(post, follow_body, header):
    assert post(follow_body, header=header).status_code == 200


def test_verify_button_empty_events_is_200_and_nothing_queued(post, r, keys):
    resp = post(b'{"destination":"Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","events":[]}')
    assert resp.status_code == 200
    assert r.xlen(keys.webhooks) == 0


def test_unknown_event_types_fields_and_ids_are_accepted(post, r, keys):
    body = json.dumps({
        "destination": "not-a-U-id",
        "newTopLevelField": {"a": [1, 2]},
        "events": [
            {"type": "membershipRenewed", "timestamp": 1, "source": {"type": "user", "userId": "weird:id"}},
            {"type": "follow", "timestamp": 2, "webhookEventId": "x", "brandNewField": None},
        ],
    }).encode()
    assert post(body).status_code == 200
    assert r.xlen(keys.webhooks) == 1


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"destination":"U1"}', "events"),
        (b'{"events":[]}', "destination"),
        (b'{"destination":"U1","events":[1]}', "events.0"),
        (b'{"destination":"U1","events":["follow"]}', "events.0"),
        (b'{"destination":"U1","events":{"type":"follow"}}', "events"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":"1"}]}', "events.0.timestamp"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":true}]}', "events.0.timestamp"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":1.5}]}', "events.0.timestamp"),
        (b'{"destination":"U1","events":[{"type":7,"timestamp":1}]}', "events.0.type"),
        (b'{"destination":"U1","events":[{"timestamp":1}]}', "events.0.type"),
        (b'{"destination":5,"events":[]}', "destination"),
        (b'[{"destination":"U1","events":[]}]', "not an object"),
        (b'"hello"', "not an object"),
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"destination":"U1","events":[]}\xff', "UTF-8"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":NaN}]}', "not JSON"),
        # Bounds that keep one body from failing the batch it is consumed in (shared/envelope.py).
        (b'{"destination":"U1","events":[{"type":"message","timestamp":1,"message":{"text":"\\ud800"}}]}',
         "lone surrogate"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":10000000000000}]}', "events.0.timestamp"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":-1}]}', "events.0.timestamp"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":1,"source":{"userId":"U' + b"0" * 64 + b'"}}]}',
         "events.0.source.userId"),
        (b'{"destination":"U1","events":[{"type":"follow","timestamp":1,"webhookEventId":"' + b"0" * 129 + b'"}]}',
         "events.0.webhookEventId"),
    ],
)
def test_signed_invalid_envelope_is_400_and_kept(post, r, keys, body, reason):
    resp = post(body)
    assert resp.status_code == 400
    assert reason in resp.get_json()["reason"]
    assert r.xlen(keys.webhooks) == 0
    [kept] = stream(r, keys.rejected)
    assert kept[BODY_FIELD] == body
    assert reason in kept[b"reason"].decode()


def test_invalid_but_unsigned_body_is_401_not_kept(post, r, keys):
    assert post(b"not json", signature=None).status_code == 401
    assert r.xlen(keys.rejected) == 0


def test_body_over_limit_is_413(app, post, r, keys):
    limit = app.extensions["linesync"].settings.ingress_max_body_bytes
    pad = b" " * (limit + 1 - len(b'{"destination":"U1","events":[]}'))
    body = b'{"destination":"U1","events":[]}' + pad
    assert len(body) == limit + 1
    resp = post(body)
    assert resp.status_code == 413
    assert resp.get_json() == {"error": "body too large"}
    assert r.xlen(keys.webhooks) == 0 and r.xlen(keys.rejected) == 0


def test_body_at_limit_is_accepted(settings, r, keys):
    from ingress import create_app

    body = b'{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'
    client = create_app(settings.replace(ingress_max_body_bytes=len(body))).test_client()
    resp = client.post("/line/events", data=body, headers={"X-Line-Signature": sign(TEST_SECRET, body)})
    assert resp.status_code == 200
    resp = client.post("/line/events", data=body + b" ", headers={"X-Line-Signature": sign(TEST_SECRET, body + b" ")})
    assert resp.status_code == 413


@pytest.mark.parametrize("coding", ["chunked", "gzip, chunked"])
def test_a_chunked_body_is_411_and_not_read(client, r, keys, follow_body, coding):
    """Under a server that hands chunked bodies to the app (linesync's worker refuses them first)."""
    stream_ = io.BytesIO(follow_body)
    resp = client.post(
        "/line/events",
        input_stream=stream_,
        headers={"X-Line-Signature": sign(TEST_SECRET, follow_body), "Transfer-Encoding": coding},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 411
    assert resp.get_json()["error"] == "length required" and "Content-Length" in resp.get_json()["detail"]
    assert stream_.tell() == 0  # not a byte read
    assert r.xlen(keys.webhooks) == 0 and r.xlen(keys.rejected) == 0


def test_other_methods_and_paths_answer_json(client):
    resp = client.get("/line/events")
    assert resp.status_code == 405 and resp.is_json
    resp = client.get("/nowhere")
    assert resp.status_code == 404 and resp.get_json() == {"error": "not found"}


def test_unsigned_requests_are_counted_and_logged_as_one_summary_a_minute(app, post, follow_body, caplog):
    """Anyone can send them: no log line each (a flood would fill the log), a metric and a summary instead."""
    from prometheus_client import REGISTRY

    from ingress.state import EXTENSION

    def unauthorized() -> float:
        return REGISTRY.get_sample_value("linesync_ingress_requests_total", {"outcome": "unauthorized"}) or 0.0

    now = [5000.0]
    app.extensions[EXTENSION].unauthorized_log.clock = lambda: now[0]
    before = unauthorized()
    with caplog.at_level("DEBUG", logger="ingress"):
        statuses = {post(follow_body, signature=None if i % 4 == 0 else "wrong").status_code for i in range(100)}
        now[0] += 61
        assert post(follow_body, signature=None).status_code == 401
    assert statuses == {401}
    assert unauthorized() - before == 101
    lines = [(rec.levelname, rec.getMessage()) for rec in caplog.records if rec.name.startswith("ingress")]
    assert [level for level, _ in lines] == ["WARNING", "WARNING"]  # the first at once, then one a minute
    assert lines[0][1].startswith("unauthorized webhooks (401, nothing stored): 1 in the last 0 s "
                                  "(signature missing: 1, wrong: 0)")
    assert lines[1][1].startswith("unauthorized webhooks (401, nothing stored): 100 in the last 61 s "
                                  "(signature missing: 25, wrong: 75)")


def test_no_secret_or_signature_or_body_logged_at_info(post, follow_body, caplog):
    signature = sign(TEST_SECRET, follow_body)
    with caplog.at_level("INFO"):
        post(follow_body)
        post(follow_body, signature=signature[:-2] + "AA")
        post(b'{"destination":"U1","events":[1],"secretish":"' + b"z" * 50 + b'"}')
    text = caplog.text
    assert TEST_SECRET not in text
    assert signature not in text and signature[:-2] not in text
    assert "z" * 50 not in text and "follow" not in text


def test_server_framed_body_with_content_length_is_read_exactly(client, r, keys, follow_body):
    """Under gunicorn (wsgi.input_terminated) the body is read straight from wsgi.input."""
    resp = client.post(
        "/line/events",
        input_stream=io.BytesIO(follow_body),
        headers={"X-Line-Signature": sign(TEST_SECRET, follow_body), "Content-Length": str(len(follow_body))},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 200
    assert stream(r, keys.webhooks)[0][BODY_FIELD] == follow_body


def test_declared_length_is_never_read_past(client, r, keys, follow_body):
    """Without server framing, a stream holding more than Content-Length is read only that far."""
    resp = client.post(
        "/line/events",
        input_stream=io.BytesIO(follow_body + b"NEXT REQUEST BYTES"),
        headers={"X-Line-Signature": sign(TEST_SECRET, follow_body)},
        environ_overrides={"CONTENT_LENGTH": str(len(follow_body))},
    )
    assert resp.status_code == 200
    assert stream(r, keys.webhooks)[0][BODY_FIELD] == follow_body


@pytest.mark.parametrize("declared", ["", "-5", "ten"])
def test_unusable_content_length_means_no_body(declared):
    from ingress.webhook import read_body

    for terminated in (True, False):
        environ = {"CONTENT_LENGTH": declared, "wsgi.input": io.BytesIO(b"abc"), "wsgi.input_terminated": terminated}
        assert read_body(environ, 10) == b""


def test_post_skips_flask_request_handling_other_routes_do_not(app, client, post, follow_body):
    """POST /line/events is served by the dispatcher in front of Flask; the rest is Flask's."""
    seen = []
    app.before_request(lambda: seen.append(1))
    assert post(follow_body).status_code == 200
    assert seen == []
    client.get("/healthz")
    assert seen == [1]


def test_flask_view_serves_the_same_handler(app, r, keys, follow_body):
    """Without the dispatcher (Flask's own WSGI app), the declared route answers alike."""
    from werkzeug.test import Client

    flask_only = Client(app.wsgi_app.flask_wsgi)
    resp = flask_only.post("/line/events", data=follow_body, headers={"X-Line-Signature": sign(TEST_SECRET, follow_body)})
    assert resp.status_code == 200 and json.loads(resp.data) == {"status": "ok"}
    assert stream(r, keys.webhooks)[0][BODY_FIELD] == follow_body
    bad = flask_only.post("/line/events", data=follow_body, headers={"X-Line-Signature": "AAAA"})
    assert bad.status_code == 401


def test_a_bug_answers_500_json_logs_it_and_stores_nothing(post, r, keys, follow_body, monkeypatch, caplog):
    from ingress import webhook

    def broken(body):
        raise RuntimeError("boom")

    monkeypatch.setattr(webhook, "validate_envelope", broken)
    with caplog.at_level("ERROR"):
        resp = post(follow_body)
    assert resp.status_code == 500 and resp.get_json() == {"error": "internal server error"}
    assert "boom" in caplog.text and "Traceback" in caplog.text
    assert r.xlen(keys.webhooks) == 0
