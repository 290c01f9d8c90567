"""The LINE sandbox: follower paging, tokens, auth and faults."""

from __future__ import annotations

import time

import pytest

from sandboxes.line import LineSandbox, follower_id
from tests.sandboxes.conftest import LINE_TOKEN

AUTH = {"Authorization": f"Bearer {LINE_TOKEN}"}


def get_page(http, line, start=None, limit=1000, headers=AUTH):
    params = {"limit": limit}
    if start:
        params["start"] = start
    return http.get(f"{line.url}/v2/bot/followers/ids", params=params, headers=headers)


def page_all(http, line, limit=1000):
    ids, start, pages = [], None, 0
    while True:
        r = get_page(http, line, start, limit)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += body["userIds"]
        pages += 1
        start = body.get("next")
        if not start:
            return ids, pages


def test_pages_to_the_end_without_gaps_or_duplicates(http, line):
    ids, pages = page_all(http, line)
    assert pages == 3
    assert ids == [follower_id(i) for i in range(2500)]
    assert line.stats()["pages_served"] == 3
    assert http.get(f"{line.url}/_sandbox/stats").json()["requests"] == {"/v2/bot/followers/ids": {"200": 3}}


def test_default_limit_and_last_page_has_no_next(http, line):
    r = http.get(f"{line.url}/v2/bot/followers/ids", headers=AUTH)
    assert len(r.json()["userIds"]) == 1000 and r.json()["next"]
    assert r.headers["X-Line-Request-Id"]
    small = get_page(http, line, limit=3000)
    assert small.status_code == 400


def test_explicit_list_and_small_limit(http, clock):
    with LineSandbox(access_token=LINE_TOKEN, followers=["Ua", "Ub", "Uc"], clock=clock) as box:
        ids, pages = page_all(http, box, limit=2)
        assert ids == ["Ua", "Ub", "Uc"] and pages == 2


def test_bearer_auth(http, line):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = get_page(http, line, headers=headers)
        assert r.status_code == 401
        assert r.json()["message"].startswith("Authentication failed")
        assert r.headers["X-Line-Request-Id"]
        assert http.get(f"{line.url}/v2/bot/info", headers=headers).status_code == 401


def test_bot_info(http, line):
    r = http.get(f"{line.url}/v2/bot/info", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["userId"].startswith("U") and body["basicId"] == "@abc"
    assert body["displayName"] == "Sandbox OA" and body["chatMode"] == "chat"
    assert body["markAsReadMode"] == "manual"


def test_insight_followers_counts_every_follower_for_any_day(http, line):
    url = f"{line.url}/v2/bot/insight/followers"
    r = http.get(url, params={"date": "20260301"}, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "followers": 2500, "targetedReaches": 2500, "blocks": 0}
    for bad in ({}, {"date": "2026-03-01"}, {"date": "yesterday"}):
        assert http.get(url, params=bad, headers=AUTH).status_code == 400
    assert http.get(url, params={"date": "20260301"}).status_code == 401


def test_token_expires_after_ttl(http, line, clock):
    start = get_page(http, line).json()["next"]
    clock.advance(24 * 3600 - 1)
    assert get_page(http, line, start).status_code == 200
    clock.advance(2)
    r = get_page(http, line, start)
    assert r.status_code == 400
    assert r.json() == {"message": "Invalid start param"}


def test_forged_or_garbled_tokens_are_rejected(http, line):
    start = get_page(http, line).json()["next"]
    forged = line.make_token(0, 0)[:-2] + "AA"
    for token in (forged, "garbage", start[:-1]):
        r = get_page(http, line, token)
        assert r.status_code == 400 and r.json()["message"] == "Invalid start param"


def test_forbidden(http, line):
    http.post(f"{line.url}/_sandbox/faults", json={"forbidden": True})
    r = get_page(http, line)
    assert r.status_code == 403
    assert r.json() == {"message": "Access to this API is not available for your account"}
    assert http.get(f"{line.url}/v2/bot/info", headers=AUTH).status_code == 200
    http.post(f"{line.url}/_sandbox/faults", json={"forbidden": False})
    assert get_page(http, line).status_code == 200


def test_fail_pages_then_recovers(http, line):
    http.post(f"{line.url}/_sandbox/faults", json={"fail_pages": {"1": 2}})
    start = get_page(http, line).json()["next"]  # page 0 is fine
    assert [get_page(http, line, start).status_code for _ in range(3)] == [500, 500, 200]
    ids, pages = page_all(http, line)
    assert pages == 3 and len(set(ids)) == 2500


def test_expire_tokens_fault(http, line):
    start = get_page(http, line).json()["next"]
    line.set_faults(expire_tokens=True)
    assert get_page(http, line, start).json() == {"message": "Invalid start param"}
    assert get_page(http, line).status_code == 200  # a fresh pass still starts
    line.clear_faults()
    assert get_page(http, line, start).status_code == 200


def test_latency_fault(http, line):
    line.set_faults(latency_ms=120)
    t = time.monotonic()
    get_page(http, line)
    assert time.monotonic() - t >= 0.12


def test_change_followers(http, line):
    r = http.post(f"{line.url}/_sandbox/followers", json={"add": ["Unew"], "remove": [follower_id(0)]})
    assert r.json() == {"count": 2500}
    ids, _ = page_all(http, line)
    assert ids[0] == follower_id(1) and ids[-1] == "Unew" and len(ids) == 2500
    http.post(f"{line.url}/_sandbox/followers", json={"count": 5})
    assert page_all(http, line)[0] == [follower_id(i) for i in range(5)]
    assert http.get(f"{line.url}/_sandbox/followers").json() == {"count": 5}
    line.set_followers(["Ux", "Uy"])
    line.remove_followers(["Ux", "Unot-a-follower"])
    line.add_followers(["Uy", "Uz"])
    assert line.follower_ids() == ["Uy", "Uz"] and line.follower_count() == 2


def test_removal_during_a_pass_does_not_shift_pages(http, line):
    first = get_page(http, line).json()
    line.remove_followers([follower_id(5), follower_id(1500)])
    rest, start = [], first["next"]
    while start:
        body = get_page(http, line, start).json()
        rest += body["userIds"]
        start = body.get("next")
    assert first["userIds"][0] == follower_id(0) and len(first["userIds"]) == 1000
    assert rest[0] == follower_id(1000) and follower_id(1500) not in rest and len(rest) == 1499


@pytest.mark.timeout(30)
def test_a_million_followers_page_fast(http, clock):
    with LineSandbox(access_token=LINE_TOKEN, followers=1_000_000, clock=clock) as box:
        start = box.make_token(999_000, 999)
        t = time.monotonic()
        body = get_page(http, box, start).json()
        assert time.monotonic() - t < 0.5
        assert body["userIds"][-1] == follower_id(999_999) and "next" not in body
        assert box.follower_count() == 1_000_000
