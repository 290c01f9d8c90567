"""/users/track rate limiting and fault injection."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from sandboxes.braze import FixedWindow
from shared.config import parse_rate
from tests.sandboxes.test_braze_track import AUTH, alias_obj, track


def test_fixed_window_arithmetic():
    w = FixedWindow(parse_rate("2/3s"))
    assert w.hit(3000.5) and w.hit(3001.0)
    assert not w.hit(3002.9)
    assert w.headers(3002.9) == {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3003"}
    assert w.retry_after(3002.9) == 1
    assert w.hit(3003.0)  # next window
    assert w.headers(3003.0)["X-RateLimit-Remaining"] == "1"


def test_rate_limit_429_with_headers_then_reset(http, braze, clock):
    braze.configure(rate_limit="3/3s")
    clock.t = 1_700_000_001.0  # windows are aligned to multiples of the period since the epoch
    reset_at = (int(clock.t) // 3 + 1) * 3
    remaining = []
    for _ in range(3):
        r = track(http, braze, attributes=[alias_obj("Ua")])
        assert r.status_code == 201
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Reset"] == str(reset_at)
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = track(http, braze, attributes=[alias_obj("Ub")])
    assert r.status_code == 429
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert r.headers["X-RateLimit-Reset"] == str(reset_at)
    assert int(r.headers["Retry-After"]) == reset_at - int(clock.t)
    assert braze.profile(alias_name="Ub") is None
    assert braze.stats()["rate_limited"] == 1
    clock.t = reset_at
    r = track(http, braze, attributes=[alias_obj("Ub")])
    assert r.status_code == 201 and r.headers["X-RateLimit-Remaining"] == "2"


def test_runtime_config_over_http(http, braze):
    r = http.post(f"{braze.url}/_sandbox/config", json={"rate_limit": "1/1s", "batch_size": 2})
    assert r.json() == {"rate_limit": "1/1s", "identify_rate_limit": "20000/60s", "batch_size": 2}
    assert track(http, braze, attributes=[alias_obj("U1")] * 3).status_code == 400
    assert track(http, braze, attributes=[alias_obj("U1")]).status_code == 429
    assert http.post(f"{braze.url}/_sandbox/config", json={"rate_limit": "nonsense"}).status_code == 400
    assert http.post(f"{braze.url}/_sandbox/config", json={"bogus": 1}).status_code == 400


def test_status_fault_for_count_requests(http, braze):
    r = http.post(f"{braze.url}/_sandbox/faults", json={"status": 500, "count": 2, "endpoint": "/users/track"})
    assert r.status_code == 200 and r.json()["count"] == 2
    statuses = [track(http, braze, attributes=[alias_obj("Ua")]).status_code for _ in range(3)]
    assert statuses == [500, 500, 201]
    assert [e["status"] for e in braze.requests()] == [500, 500, 201]
    assert len(braze.profile(alias_name="Ua")["history"]) == 1  # faulted requests changed nothing


def test_fault_429_carries_rate_headers(http, braze):
    braze.set_faults(status=429, count=1)
    r = track(http, braze, attributes=[alias_obj("Ua")])
    assert r.status_code == 429
    assert r.headers["X-RateLimit-Remaining"] == "0" and "Retry-After" in r.headers


def test_fault_endpoint_filter(http, braze):
    braze.set_faults(status=503, count=1, endpoint="/users/merge")
    assert track(http, braze, attributes=[alias_obj("Ua")]).status_code == 201
    r = http.post(f"{braze.url}/users/merge", headers=AUTH, json={"merge_updates": [
        {"identifier_to_merge": {"external_id": "a"}, "identifier_to_keep": {"external_id": "b"}}]})
    assert r.status_code == 503


def test_latency(http, braze):
    http.post(f"{braze.url}/_sandbox/faults", json={"latency_ms": 150})
    t = time.monotonic()
    assert track(http, braze, attributes=[alias_obj("Ua")]).status_code == 201
    assert time.monotonic() - t >= 0.15
    http.post(f"{braze.url}/_sandbox/faults", json={"clear": True})
    assert braze.faults()["latency_ms"] == 0


def test_inflight_counts_requests_during_latency_and_peak_resets(http, braze):
    http.post(f"{braze.url}/_sandbox/faults", json={"latency_ms": 300})
    n = 5
    statuses: list[int] = []
    start = threading.Barrier(n)

    def send(i: int) -> None:
        with requests.Session() as s:  # one connection per thread: all arrive at once
            start.wait()
            statuses.append(track(s, braze, attributes=[alias_obj(f"U{i}")]).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    seen = 0  # the most requests seen in flight "now" while they sleep in the injected latency
    deadline = time.monotonic() + 5
    while seen < n and time.monotonic() < deadline and any(t.is_alive() for t in threads):
        seen = max(seen, http.get(f"{braze.url}/_sandbox/stats").json()["inflight"])
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    assert statuses == [201] * n
    assert seen >= 1
    stats = http.get(f"{braze.url}/_sandbox/stats").json()
    assert stats["inflight_peak"] >= n and stats["inflight"] == 0
    assert braze.stats()["inflight"] == 0
    http.post(f"{braze.url}/_sandbox/reset", json={})
    assert braze.stats()["inflight_peak"] == 0 and braze.stats()["inflight"] == 0


def test_poison_400_rejects_whole_request(http, braze):
    braze.set_faults(poison_ids=["Ubad"], poison_mode="400")
    r = track(http, braze, attributes=[alias_obj("Ugood"), alias_obj("Ubad")])
    assert r.status_code == 400
    assert r.json()["errors"] == [{"type": "sandbox poison id", "input_array": "attributes", "index": 1}]
    assert braze.profiles() == []
    # an external_id object carrying the poisoned native_line_id is caught too
    r = track(http, braze, attributes=[{"external_id": "c1", "native_line_id": "Ubad"}])
    assert r.status_code == 400
    assert track(http, braze, attributes=[alias_obj("Ugood")]).status_code == 201


def test_poison_error_mode_reports_item(http, braze):
    http.post(f"{braze.url}/_sandbox/faults", json={"poison_ids": ["Ubad"], "poison_mode": "error"})
    r = track(http, braze, attributes=[alias_obj("Ugood"), alias_obj("Ubad")])
    assert r.status_code == 201
    assert r.json()["attributes_processed"] == 1
    assert r.json()["errors"] == [{"type": "sandbox poison id", "input_array": "attributes", "index": 1}]
    assert braze.profile(alias_name="Ugood") and braze.profile(alias_name="Ubad") is None


@pytest.mark.parametrize("body", [{"poison_mode": "sometimes"}, {"status": 1000}, {"nope": 1}])
def test_bad_fault_requests_are_400(http, braze, body):
    assert http.post(f"{braze.url}/_sandbox/faults", json=body).status_code == 400
