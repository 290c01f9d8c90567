"""The Braze sandbox's compact mode: profiles kept as their identifier and subscription states only."""

from __future__ import annotations

import pytest

from sandboxes import BrazeSandbox
from tests.sandboxes.conftest import BRAZE_KEY
from tests.sandboxes.test_braze_track import AUTH, GROUP, alias_obj, track


@pytest.fixture
def braze(clock):
    box = BrazeSandbox(api_key=BRAZE_KEY, clock=clock, compact=True).start()
    yield box
    box.stop()


def test_profiles_are_counted_and_keep_their_latest_subscription_state(http, braze):
    assert track(http, braze, attributes=[alias_obj("Ua"), alias_obj("Ub"), {"external_id": "c1"}]).status_code == 201
    track(http, braze, attributes=[alias_obj("Ua", "unsubscribed"), alias_obj("Uc", update_only=True)])
    stats = http.get(f"{braze.url}/_sandbox/stats").json()
    assert stats["profiles"] == 3 and stats["compact"] is True and stats["objects_received"] == 5
    assert stats["skipped_missing_profiles"] == 1  # _update_existing_only is applied as in full mode
    assert braze.subscription_state(GROUP, alias_name="Ua") == "unsubscribed"
    got = http.get(f"{braze.url}/_sandbox/profile", params={"alias_name": "Ub"}).json()
    assert got["aliases"] == [{"alias_name": "Ub", "alias_label": "line_id"}]
    assert got["subscription_groups"] == {GROUP: "subscribed"}
    assert got["native_line_id"] is None and got["history"] == []  # not kept
    assert braze.profile(external_id="c1")["subscription_groups"] == {}
    assert braze.profile(alias_name="Ub", alias_label="other") is None
    assert sorted(p["braze_id"] for p in braze.profiles()) == [
        "compact:a:line_id:Ua", "compact:a:line_id:Ub", "compact:x:c1"]


def test_profiles_in_the_same_states_share_one_value(http, braze):
    track(http, braze, attributes=[alias_obj(f"U{i}") for i in range(3)])
    states = list(braze._store._states.values())
    assert states[0] == ((GROUP, "subscribed"),) and all(s is states[0] for s in states)


def test_events_and_purchases_are_validated_and_counted_not_kept(http, braze):
    r = track(http, braze, events=[{"external_id": "c1", "name": "e", "time": "2024-05-01T10:00:00Z"},
                                   {"external_id": "c1", "name": "bad", "time": "yesterday"}])
    assert r.status_code == 201 and r.json()["events_processed"] == 1 and len(r.json()["errors"]) == 1
    assert braze.stats()["events_received"] == 2 and braze.profile(external_id="c1")["events"] == []


def test_identify_and_merge_are_off(http, braze):
    for path, body in (("identify", {"aliases_to_identify": [{"external_id": "c1", "user_alias": {
                            "alias_name": "Ua", "alias_label": "line_id"}}]}),
                       ("merge", {"merge_updates": [{"identifier_to_merge": {"external_id": "a"},
                                                     "identifier_to_keep": {"external_id": "b"}}]})):
        r = http.post(f"{braze.url}/users/{path}", json=body, headers=AUTH)
        assert r.status_code == 501 and "compact" in r.json()["message"]


def test_reset_stays_compact(http, braze):
    track(http, braze, attributes=[alias_obj("Ua")])
    braze.reset()
    assert braze.stats()["profiles"] == 0 and braze.stats()["compact"] is True
    track(http, braze, attributes=[alias_obj("Ua")])
    assert braze.profile(alias_name="Ua")["braze_id"] == "compact:a:line_id:Ua"


def test_a_full_sandbox_says_it_is_not_compact(http):
    box = BrazeSandbox(api_key=BRAZE_KEY).start()
    try:
        assert box.stats()["compact"] is False
    finally:
        box.stop()
