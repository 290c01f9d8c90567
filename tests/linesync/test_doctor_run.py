"""diagnose(): every check in order, skipping what cannot be checked (fake HTTP, real or absent Redis)."""

import redis

from linesync.doctor import diagnose, exit_code
from shared.check import FAIL, OK, SKIP, WARN
from shared.config import Settings
from shared.lease import Lease
from tests.linesync.doctor_fakes import FakeHttp, reply

GROUP = "0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab"
PUBLIC = "https://hooks.example.com"


def good_http():
    return FakeHttp({
        ("GET", "/v2/bot/info"): reply(200, {"basicId": "@abc"}),
        ("GET", "/v2/bot/channel/webhook/endpoint"): reply(200, {"endpoint": PUBLIC + "/line/events", "active": True}),
        ("POST", "/v2/bot/channel/webhook/test"): reply(200, {"success": True, "statusCode": 200, "reason": "OK",
                                                               "detail": "200"}),
        ("POST", "/users/track"): reply(201, {"message": "success"}),
    })


def settings(redis_url="redis://127.0.0.1:1/0", **kw):
    return Settings(redis_url=redis_url, line_channel_access_token="t", braze_rest_endpoint="https://b.example",
                    braze_api_key="k", braze_subscription_group_id=GROUP, public_url=PUBLIC, **kw)


def statuses(checks):
    return {c.name: c.status for c in checks}


def down(url):
    raise redis.ConnectionError("refused")


def test_redis_down_skips_what_needs_it_and_still_checks_line_and_braze():
    checks = diagnose(settings(), http=good_http(), connect_redis=down)
    s = statuses(checks)
    assert s["redis.connection"] == FAIL
    assert s["workers.alive"] == s["beat.alive"] == s["resync.recent"] == SKIP
    assert s["line.token"] == s["braze.api_key"] == OK
    assert "redis.version" not in s
    assert exit_code(checks) == 1


def test_redis_password_never_shown():
    (c, *_) = diagnose(settings("redis://:hunter2@127.0.0.1:1/0"), http=good_http(), connect_redis=down)
    assert "hunter2" not in c.detail and "***" in c.detail


def test_a_refused_token_skips_the_webhook_checks():
    http = good_http()
    http.routes[("GET", "/v2/bot/info")] = reply(401, {"message": "Authentication failed"})
    s = statuses(diagnose(settings(), http=http, connect_redis=down, send_test=True))
    assert s["line.token"] == FAIL
    assert s["line.webhook_url"] == s["line.webhook_active"] == s["line.test_delivery"] == SKIP
    assert [c["url"].rsplit("/", 1)[-1] for c in http.calls] == ["info", "track"]


def test_send_test_is_asked_for():
    assert "line.test_delivery" not in statuses(diagnose(settings(), http=good_http(), connect_redis=down))
    http = good_http()
    s = statuses(diagnose(settings(), http=http, connect_redis=down, send_test=True))
    assert s["line.test_delivery"] == OK
    assert http.calls[2]["json"] == {"endpoint": PUBLIC + "/line/events"}


def test_everything_alive_on_a_real_redis(r, keys, redis_url):
    """The session Redis has AOF and noeviction but no maxmemory: one warning, exit status 3."""
    Lease(r, keys.worker("w1"), 15_000).take()
    r.zadd(keys.workers, {"w1": 1})
    r.set(keys.redbeat_lock, "token", px=30_000)
    r.lpush(keys.resync_history, '{"status": "completed", "finished_ms": %d, "followers": 3}'
            % (r.time()[0] * 1000 - 60_000))
    checks = diagnose(settings(redis_url), http=good_http())
    s = statuses(checks)
    assert s.pop("redis.memory") == WARN
    assert set(s.values()) == {OK}, [c.line() for c in checks if c.status != OK]
    assert exit_code(checks) == 3


def test_process_checks_fail_on_an_empty_redis(r, redis_url):
    s = statuses(diagnose(settings(redis_url), http=good_http()))
    assert s["workers.alive"] == s["beat.alive"] == FAIL
    assert s["resync.recent"] == WARN
