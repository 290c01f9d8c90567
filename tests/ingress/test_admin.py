"""The /v1 admin endpoints: token, validation, effects in Redis."""

import pytest

from ingress import create_app
from shared import links

U1 = "U" + "a" * 32
U2 = "U" + "b" * 32
AUTH = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def admin(settings, r):
    return create_app(settings.replace(admin_token="admin-secret")).test_client()


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
