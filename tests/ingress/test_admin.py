"""The /v1 admin endpoints: token, validation, effects in Redis."""

import pytest

from ingress import create_app
from shared import links
from tests.ingress.conftest import admin_surface

U1 = "U" + "a" * 32
U2 = "U" + "b" * 32
AUTH = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def admin(settings, r):
    return admin_surface(create_app(settings.replace(admin_token="admin-secret")).test_client())


def test_endpoints_are_off_without_a_token(client):
    assert client.post("/v1/links", json=[{"external_id": "x", "line_user_id": U1}], headers=AUTH).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "admin-secret"}])
def test_a_wrong_or_missing_token_is_401(admin, headers, r, keys):
    resp = admin.post("/v1/links", json=[{"external_id": "x", "line_user_id": U1}], headers=headers)
    assert resp.status_code == 401 and r.hlen(keys.links_ext) == 0


def test_link_pairs_and_report_bad_ones(admin, r, keys):
    resp = admin.post("/v1/links", headers=AUTH, json=[
        {"external_id": "crm-1", "line_user_id": U1},
        {"external_id": "crm-2", "native_line_id": U2},
        {"external_id": "crm-3", "line_user_id": "nope"},
        "not an object",
    ])
    assert resp.status_code == 207
    assert resp.json["linked"] == 2 and [e["index"] for e in resp.json["errors"]] == [2, 3]
    assert links.line_user(r, keys, "crm-2") == U2
    assert admin.delete("/v1/links/crm-1", headers=AUTH).status_code == 200
    assert admin.delete("/v1/links/crm-1", headers=AUTH).status_code == 404


def test_identify_and_merge_are_queued(admin, r, keys):
    assert admin.post("/v1/identify", headers=AUTH, json={"external_id": "crm-1", "line_user_id": U1}).status_code == 202
    assert admin.post("/v1/merge", headers=AUTH, json=[{"external_id": "crm-2", "line_user_id": U2}]).status_code == 202
    kinds = [f[b"kind"] for _, f in r.xrange(keys.identity)]
    assert kinds == [b"identify", b"merge"]


def test_link_nonces_expire(admin, r, keys):
    resp = admin.post("/v1/link-nonces", headers=AUTH, json={"nonce": "n1", "external_id": "crm-1", "ttl_seconds": 60})
    assert resp.status_code == 201
    assert r.get(keys.nonce("n1")) == b"crm-1" and 0 < r.ttl(keys.nonce("n1")) <= 60
    assert admin.post("/v1/link-nonces", headers=AUTH, json={"nonce": ""}).status_code == 400


@pytest.mark.parametrize("body", [b"not json", b"[]", b"3"])
def test_malformed_bodies_are_400(admin, body):
    resp = admin.post("/v1/links", headers={**AUTH, "Content-Type": "application/json"}, data=body)
    assert resp.status_code == 400


# -- who did what, and repeated bad tokens -----------------------------------------


def test_calls_are_logged_with_who_what_and_how_many_without_secrets(admin, caplog):
    caplog.set_level("INFO", logger="ingress.admin")
    admin.post("/v1/links", headers=AUTH, environ_base={"REMOTE_ADDR": "10.1.2.3"}, json=[
        {"external_id": "crm-1", "line_user_id": U1}, {"external_id": "crm-2", "line_user_id": U2}])
    admin.delete("/v1/links/crm-1", headers=AUTH, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    admin.post("/v1/link-nonces", headers=AUTH, json={"nonce": "very-secret-nonce", "external_id": "crm-9"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "ingress.admin"]
    assert lines[0] == "admin API: POST /v1/links from 10.1.2.3: 2 items, answered 200"
    assert lines[1] == "admin API: DELETE /v1/links/crm-1 from 10.1.2.3: 1 items, answered 200"
    assert lines[2].startswith("admin API: POST /v1/link-nonces from 127.0.0.1: 1 items, answered 201")
    text = "\n".join(lines)
    assert "admin-secret" not in text and "very-secret-nonce" not in text and U1 not in text


def test_ten_bad_tokens_in_a_minute_are_followed_by_429_for_a_minute_but_never_for_the_right_token(
        settings, r, keys, caplog):
    from ingress.state import EXTENSION

    app = create_app(settings.replace(admin_token="admin-secret"))
    clock = [1000.0]
    app.extensions[EXTENSION].admin_failures.clock = lambda: clock[0]
    client = admin_surface(app.test_client())
    caplog.set_level("INFO", logger="ingress.admin")

    def call(token: str, addr: str = "10.9.9.9"):
        return client.post("/v1/links", json=[{"external_id": "x", "line_user_id": U1}],
                           headers={"Authorization": f"Bearer {token}"}, environ_base={"REMOTE_ADDR": addr})

    assert [call("guess-%d" % i).status_code for i in range(10)] == [401] * 10
    resp = call("guess-10")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "60"
    # The right token from the same address is not locked out, however many bad ones keep coming.
    assert call("admin-secret").status_code == 200
    assert [call("guess-%d" % i).status_code for i in range(11, 100)] == [429] * 89
    assert call("admin-secret").status_code == 200
    assert call("", addr="10.9.9.9").status_code == 429  # no token at all is a bad one too
    assert call("guess", addr="10.0.0.1").status_code == 401  # per address
    clock[0] += 59
    assert call("guess-100").status_code == 429
    clock[0] += 1.5
    assert call("guess-101").status_code == 401  # the block is over
    assert r.hlen(keys.links_ext) == 1
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING"]
    assert len(warnings) == 12  # one per 401; the 429s are not logged one by one
    assert warnings[0] == "admin API: wrong token from 10.9.9.9 on POST /v1/links (1 in the last 60 s)"
    assert warnings[9].endswith("(10 in the last 60 s); its bad tokens get 429 for 60 s")
    assert not any("guess" in w or "admin-secret" in w for w in warnings)
    infos = [rec.getMessage() for rec in caplog.records if rec.levelname == "INFO"]
    assert infos == ["admin API: POST /v1/links from 10.9.9.9: 1 items, answered 200"] * 2


def test_failures_spread_over_more_than_a_minute_are_not_blocked():
    from ingress.auth_throttle import FailureLimiter

    now = [0.0]
    limiter = FailureLimiter(clock=lambda: now[0])
    for _ in range(30):
        assert limiter.failed("a") < 10
        assert limiter.retry_after("a") == 0
        now[0] += 7  # 9 failures per minute at most
    for _ in range(9):
        limiter.failed("b")
    assert limiter.retry_after("b") == 0
    assert limiter.failed("b") == 10 and limiter.retry_after("b") == 60


def test_the_limiter_remembers_a_bounded_number_of_addresses():
    from ingress.auth_throttle import FailureLimiter

    limiter = FailureLimiter(max_tracked=100, max_failures=2)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) <= 100 and len(limiter._blocked) <= 100
    assert limiter.retry_after("10.0.3.231") > 0  # the most recent ones are kept
