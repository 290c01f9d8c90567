"""LINE checks with a fake HTTP collaborator; the interpretations are pure."""

import pytest

from linesync.doctor import line_checks
from linesync.doctor.http import HttpFailure
from shared.check import FAIL, OK, SKIP, WARN
from tests.linesync.doctor_fakes import FakeHttp, reply

BASE = "https://api.line.me"
EXPECTED = "https://hooks.example.com/line/events"


def test_token_works():
    http = FakeHttp({("GET", "/v2/bot/info"): reply(200, {"basicId": "@abc", "displayName": "Shop"})})
    c = line_checks.token(http, BASE, "t0ken")
    assert c.status == OK and "@abc Shop" in c.detail
    assert http.calls[0]["headers"] == {"Authorization": "Bearer t0ken"}


def test_token_refused_quotes_line_but_not_the_token():
    http = FakeHttp({("GET", "/v2/bot/info"): reply(401, {"message": "Authentication failed"},
                                                     **{"X-Line-Request-Id": "req-1"})})
    c = line_checks.token(http, BASE, "t0ken")
    assert c.status == FAIL
    assert "401" in c.detail and "Authentication failed" in c.detail and "req-1" in c.detail
    assert "t0ken" not in c.detail + c.fix


def test_token_unset_or_unreachable():
    assert "not set" in line_checks.token(FakeHttp(), BASE, None).detail
    c = line_checks.token(FakeHttp({("GET", "/v2/bot/info"): HttpFailure("timed out connecting")}), BASE, "t")
    assert c.status == FAIL and "timed out connecting" in c.detail


@pytest.mark.parametrize("a, b, same", [
    (EXPECTED, EXPECTED, True),
    ("HTTPS://Hooks.Example.com:443/line/events", EXPECTED, True),
    ("http://127.0.0.1:8080/line/events", "http://127.0.0.1:8080/line/events", True),
    ("https://hooks.example.com/line/events/", EXPECTED, False),
    ("https://other.example.com/line/events", EXPECTED, False),
    ("http://hooks.example.com/line/events", EXPECTED, False),
    ("https://hooks.example.com/LINE/events", EXPECTED, False),
])
def test_same_url(a, b, same):
    assert line_checks.same_url(a, b) is same


def by_name(checks):
    return {c.name: c for c in checks}


def test_webhook_right_and_on():
    c = by_name(line_checks.webhook_from(200, {"endpoint": EXPECTED, "active": True}, EXPECTED))
    assert c["line.webhook_url"].status == OK and c["line.webhook_active"].status == OK


@pytest.mark.parametrize("status, doc", [(200, {"endpoint": "", "active": False}), (404, {"message": "Not found"})])
def test_webhook_not_set(status, doc):
    c = by_name(line_checks.webhook_from(status, doc, EXPECTED))
    assert c["line.webhook_url"].status == FAIL
    assert "no webhook URL on file" in c["line.webhook_url"].detail
    assert EXPECTED in c["line.webhook_url"].fix
    assert c["line.webhook_active"].status == SKIP


def test_webhook_elsewhere_names_both_urls():
    c = by_name(line_checks.webhook_from(200, {"endpoint": "https://old.example.com/cb", "active": True}, EXPECTED))
    url = c["line.webhook_url"]
    assert url.status == FAIL and "https://old.example.com/cb" in url.detail and EXPECTED in url.detail
    assert c["line.webhook_active"].status == OK


def test_webhook_inactive():
    c = by_name(line_checks.webhook_from(200, {"endpoint": EXPECTED, "active": False}, EXPECTED))
    assert c["line.webhook_url"].status == OK
    assert c["line.webhook_active"].status == FAIL and "Use webhook" in c["line.webhook_active"].fix


def test_webhook_without_public_url_is_a_warning():
    c = by_name(line_checks.webhook_from(200, {"endpoint": EXPECTED, "active": True}, None))
    assert c["line.webhook_url"].status == WARN and "LINESYNC_PUBLIC_URL" in c["line.webhook_url"].fix


def test_webhook_fetch():
    http = FakeHttp({("GET", "/v2/bot/channel/webhook/endpoint"): reply(200, {"endpoint": EXPECTED, "active": True})})
    assert {c.status for c in line_checks.webhook(http, BASE, "t", EXPECTED)} == {OK}
    assert http.calls[0]["url"] == BASE + "/v2/bot/channel/webhook/endpoint"
    down = line_checks.webhook(FakeHttp(), BASE, "t", EXPECTED)
    assert [c.status for c in down] == [FAIL, SKIP]


def test_delivery_success():
    doc = {"success": True, "timestamp": "2024-01-01T00:00:00.000Z", "statusCode": 200, "reason": "OK",
           "detail": "200"}
    http = FakeHttp({("POST", "/v2/bot/channel/webhook/test"): reply(200, doc)})
    c = line_checks.delivery(http, BASE, "t", EXPECTED)
    assert c.status == OK and EXPECTED in c.detail
    assert http.calls[0]["json"] == {"endpoint": EXPECTED}
    line_checks.delivery(http, BASE, "t", None)
    assert http.calls[1]["json"] == {}  # LINE tests the URL on file


@pytest.mark.parametrize("doc, words, fix_words", [
    ({"success": False, "statusCode": 401, "reason": "ERROR_STATUS_CODE", "detail": "401"},
     "refused LINE's signature", "LINE_CHANNEL_SECRET"),
    ({"success": False, "statusCode": 503, "reason": "ERROR_STATUS_CODE", "detail": "503"}, "503", "REDIS_URL"),
    ({"success": False, "statusCode": 0, "reason": "COULD_NOT_CONNECT", "detail": "Connection failed"},
     "could not get an answer", "HTTPS"),
    ({"success": False, "statusCode": 404, "reason": "ERROR_STATUS_CODE", "detail": "404"}, "answered 404",
     "/line/events"),
])
def test_delivery_failures(doc, words, fix_words):
    c = line_checks.delivery_from(200, doc, EXPECTED)
    assert c.status == FAIL and words in c.detail and fix_words in c.fix


def test_delivery_refused_by_line():
    not_set = reply(400, {"message": "The webhook endpoint is not set"})
    http = FakeHttp({("POST", "/v2/bot/channel/webhook/test"): not_set})
    c = line_checks.delivery(http, BASE, "t", None)
    assert c.status == FAIL and "The webhook endpoint is not set" in c.detail and "webhook URL" in c.fix
