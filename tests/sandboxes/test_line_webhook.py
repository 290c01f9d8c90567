"""The LINE sandbox's webhook calls: the URL on file (GET/PUT), LINE's test delivery, and their faults."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from sandboxes.line import BOT_USER_ID, LineSandbox
from sandboxes.server import SandboxServer, json_response
from shared.embedded_redis import free_port
from shared.signature import verify
from tests.sandboxes.conftest import LINE_TOKEN

AUTH = {"Authorization": f"Bearer {LINE_TOKEN}"}
SECRET = "c0ffee" * 5 + "00"
ENDPOINT = "/v2/bot/channel/webhook/endpoint"
TEST = "/v2/bot/channel/webhook/test"


class Receiver:
    """A webhook endpoint that records what it gets and answers ``status`` (after ``delay`` s)."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.status, self.delay = status, delay
        self.got: list[tuple[dict, bytes]] = []
        self._http = SandboxServer(self)

    def handle(self, request):
        self.got.append((request.headers, request.body))
        time.sleep(self.delay)
        return json_response(self.status, {})

    def __enter__(self):
        self._http.start()
        self.url = self._http.url + "/line/events"
        return self

    def __exit__(self, *exc):
        self._http.stop()


@pytest.fixture
def box(clock):
    b = LineSandbox(access_token=LINE_TOKEN, channel_secret=SECRET, clock=clock).start()
    yield b
    b.stop()


def test_no_url_on_file_at_first(http, box):
    r = http.get(box.url + ENDPOINT, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"endpoint": "", "active": False}
    assert r.headers["X-Line-Request-Id"]


def test_put_then_get(http, box):
    r = http.put(box.url + ENDPOINT, json={"endpoint": "https://hooks.example.com/line/events"}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {}
    assert http.get(box.url + ENDPOINT, headers=AUTH).json() == {
        "endpoint": "https://hooks.example.com/line/events", "active": True}
    assert box.webhook()["endpoint"] == "https://hooks.example.com/line/events"


@pytest.mark.parametrize("body", [{}, {"endpoint": ""}, {"endpoint": "ftp://x/y"}, {"endpoint": 5},
                                  {"endpoint": "https://x.example/" + "a" * 500}])
def test_put_rejects_a_bad_endpoint_like_line(http, box, body):
    r = http.put(box.url + ENDPOINT, json=body, headers=AUTH)
    assert r.status_code == 400
    assert r.json()["details"][0]["property"] == "endpoint"
    assert box.webhook()["endpoint"] == ""


def test_constructor_and_in_process_setter(clock):
    with LineSandbox(webhook_endpoint="http://127.0.0.1:8080/line/events", clock=clock) as b:
        assert b.webhook() == {"endpoint": "http://127.0.0.1:8080/line/events", "active": True}
        b.set_webhook_endpoint(None)
        assert b.webhook()["endpoint"] == ""
    with pytest.raises(ValueError):
        LineSandbox(webhook_endpoint="not a url")


@pytest.mark.parametrize("method, path", [("GET", ENDPOINT), ("PUT", ENDPOINT), ("POST", TEST)])
def test_a_wrong_token_is_401(http, box, method, path):
    r = http.request(method, box.url + path, json={"endpoint": "https://x.example/e"},
                     headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["message"].startswith("Authentication failed")


def test_wrong_methods(http, box):
    assert http.post(box.url + ENDPOINT, headers=AUTH).status_code == 405
    assert http.get(box.url + TEST, headers=AUTH).status_code == 405


def test_test_delivery_posts_a_signed_empty_webhook(http, box, clock):
    with Receiver() as hook:
        box.set_webhook_endpoint(hook.url)
        r = http.post(box.url + TEST, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"success": True, "timestamp": "2023-11-14T22:13:21.000Z", "statusCode": 200,
                        "reason": "OK", "detail": "200"}
    ((headers, body),) = hook.got
    assert json.loads(body) == {"destination": BOT_USER_ID, "events": []}
    assert verify(SECRET, body, headers["x-line-signature"])
    assert headers["content-type"].startswith("application/json")


def test_test_delivery_to_a_given_endpoint_leaves_the_url_on_file(http, box):
    box.set_webhook_endpoint("https://on-file.example.com/line/events")
    with Receiver() as hook:
        r = http.post(box.url + TEST, json={"endpoint": hook.url}, headers=AUTH)
    assert r.json()["success"] is True and len(hook.got) == 1
    assert box.webhook()["endpoint"] == "https://on-file.example.com/line/events"


def test_test_delivery_reports_the_endpoints_status(http, box):
    with Receiver(status=401) as hook:
        r = http.post(box.url + TEST, json={"endpoint": hook.url}, headers=AUTH)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("success", "statusCode", "reason")} == {
        "success": False, "statusCode": 401, "reason": "ERROR_STATUS_CODE"}


def test_test_delivery_to_nothing_and_to_a_slow_endpoint(http, clock):
    with LineSandbox(access_token=LINE_TOKEN, webhook_timeout=0.3, clock=clock) as b:
        dead = f"http://127.0.0.1:{free_port()}/line/events"
        r = http.post(b.url + TEST, json={"endpoint": dead}, headers=AUTH).json()
        assert (r["success"], r["statusCode"], r["reason"]) == (False, 0, "COULD_NOT_CONNECT")
        with Receiver(delay=1.0) as hook:
            r = http.post(b.url + TEST, json={"endpoint": hook.url}, headers=AUTH).json()
        assert (r["success"], r["statusCode"], r["reason"]) == (False, 0, "REQUEST_TIMEOUT")


def test_test_delivery_needs_a_url(http, box):
    r = http.post(box.url + TEST, headers=AUTH)
    assert r.status_code == 400 and r.json() == {"message": "The webhook endpoint is not set"}


def test_a_test_delivery_does_not_block_other_calls(http, box):
    """The delivery waits outside the sandbox's lock: followers still page meanwhile."""
    with Receiver(delay=0.5) as hook:
        t = threading.Thread(target=http.post, args=(box.url + TEST,),
                             kwargs={"json": {"endpoint": hook.url}, "headers": AUTH})
        t.start()
        time.sleep(0.1)
        started = time.monotonic()
        assert requests.get(box.url + "/v2/bot/info", headers=AUTH).status_code == 200
        assert time.monotonic() - started < 0.3
        t.join()


def test_faults_unset_and_inactive(http, box):
    box.set_webhook_endpoint("https://hooks.example.com/line/events")
    r = http.post(box.url + "/_sandbox/faults", json={"webhook_inactive": True})
    assert r.json()["webhook_inactive"] is True
    assert http.get(box.url + ENDPOINT, headers=AUTH).json() == {
        "endpoint": "https://hooks.example.com/line/events", "active": False}
    http.post(box.url + "/_sandbox/faults", json={"webhook_unset": True})
    assert http.get(box.url + ENDPOINT, headers=AUTH).json() == {"endpoint": "", "active": False}
    assert http.post(box.url + TEST, headers=AUTH).status_code == 400
    http.post(box.url + "/_sandbox/faults", json={"clear": True})
    assert http.get(box.url + ENDPOINT, headers=AUTH).json()["active"] is True
    assert box.stats()["requests"][ENDPOINT] == {"200": 3}
