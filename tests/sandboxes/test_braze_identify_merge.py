"""/users/identify and /users/merge."""

from __future__ import annotations

from tests.sandboxes.test_braze_track import AUTH, GROUP, alias_obj, track


def identify(http, braze, *pairs, headers=AUTH):
    body = {"aliases_to_identify": [
        {"external_id": eid, "user_alias": {"alias_name": uid, "alias_label": "line_id"}} for eid, uid in pairs
    ]}
    return http.post(f"{braze.url}/users/identify", json=body, headers=headers)


def merge(http, braze, to_merge, to_keep):
    body = {"merge_updates": [{"identifier_to_merge": to_merge, "identifier_to_keep": to_keep}]}
    return http.post(f"{braze.url}/users/merge", json=body, headers=AUTH)


def test_identify_onto_new_external_id(http, braze):
    track(http, braze, attributes=[alias_obj("Ua")])
    r = identify(http, braze, ("cust-1", "Ua"))
    assert r.status_code == 201 and r.json()["aliases_processed"] == 1
    assert "X-RateLimit-Limit" in r.headers and r.headers["X-RateLimit-Limit"] == "20000"
    p = braze.profile(external_id="cust-1")
    assert p == braze.profile(alias_name="Ua")
    assert p["subscription_groups"] == {GROUP: "subscribed"}
    assert len(braze.profiles()) == 1


def test_identify_onto_existing_external_id_merges_alias_profile(http, braze):
    track(http, braze, attributes=[{"external_id": "cust-1", "tier": "gold", "color": "red"}])
    track(http, braze, attributes=[alias_obj("Ua", color="blue")])
    track(http, braze, events=[{"user_alias": {"alias_name": "Ua", "alias_label": "line_id"},
                                "name": "follow", "time": "2024-01-01T00:00:00Z"}])
    r = identify(http, braze, ("cust-1", "Ua"))
    assert r.status_code == 201
    profiles = braze.profiles()
    assert len(profiles) == 1
    p = profiles[0]
    assert p["external_id"] == "cust-1"
    assert p["aliases"] == [{"alias_name": "Ua", "alias_label": "line_id"}]
    assert p["native_line_id"] == "Ua"
    assert p["subscription_groups"] == {GROUP: "subscribed"}
    assert p["custom_attributes"] == {"tier": "gold", "color": "red"}  # the identified profile wins
    assert [e["name"] for e in p["events"]] == ["follow"]
    # later alias updates land on the identified profile
    track(http, braze, attributes=[alias_obj("Ua", "unsubscribed")])
    assert braze.subscription_state(GROUP, external_id="cust-1") == "unsubscribed"


def test_identify_limits_and_errors(http, braze):
    r = identify(http, braze, *[(f"c{i}", f"U{i}") for i in range(51)])
    assert r.status_code == 400
    assert identify(http, braze, ("c", "U"), headers={}).status_code == 401
    r = http.post(f"{braze.url}/users/identify", headers=AUTH, json={"aliases_to_identify": [{"external_id": "x"}]})
    assert r.status_code == 201 and r.json()["errors"][0]["index"] == 0


def test_merge_keeps_identifier_to_keep(http, braze):
    track(http, braze, attributes=[{"external_id": "keep", "tier": "gold"}])
    track(http, braze, attributes=[alias_obj("Ua", tier="silver", extra=1)])
    r = merge(http, braze, {"user_alias": {"alias_name": "Ua", "alias_label": "line_id"}}, {"external_id": "keep"})
    assert r.status_code == 202 and r.json() == {"message": "success"}
    profiles = braze.profiles()
    assert len(profiles) == 1
    p = profiles[0]
    assert p["external_id"] == "keep"
    assert p["custom_attributes"] == {"tier": "gold", "extra": 1}
    assert p["native_line_id"] == "Ua"
    assert p["subscription_groups"] == {GROUP: "subscribed"}


def test_merge_two_external_ids(http, braze):
    track(http, braze, attributes=[{"external_id": "a", "native_line_id": "Ua"}])
    track(http, braze, attributes=[{"external_id": "b"}])
    assert merge(http, braze, {"external_id": "a"}, {"external_id": "b"}).status_code == 202
    assert braze.profile(external_id="a") is None
    assert braze.profile(external_id="b")["native_line_id"] == "Ua"


def test_merge_limit(http, braze):
    body = {"merge_updates": [
        {"identifier_to_merge": {"external_id": f"a{i}"}, "identifier_to_keep": {"external_id": "b"}}
        for i in range(51)]}
    assert http.post(f"{braze.url}/users/merge", json=body, headers=AUTH).status_code == 400


def test_identify_and_merge_share_their_rate_limit(http, braze):
    braze.configure(identify_rate_limit="2/60s")
    assert identify(http, braze, ("c", "U")).status_code == 201
    assert merge(http, braze, {"external_id": "a"}, {"external_id": "b"}).status_code == 202
    r = identify(http, braze, ("c", "U"))
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert track(http, braze, attributes=[alias_obj("Ua")]).status_code == 201  # separate budget


def test_poisoned_identify_and_merge_items(http, braze):
    track(http, braze, attributes=[alias_obj("Ua"), alias_obj("Ubad")])
    braze.set_faults(poison_ids=["Ubad"], poison_mode="400")
    r = identify(http, braze, ("cust-1", "Ua"), ("cust-2", "Ubad"))
    assert r.status_code == 400
    assert r.json()["errors"] == [{"type": "sandbox poison id", "input_array": "aliases_to_identify", "index": 1}]
    assert braze.profile(external_id="cust-1") is None         # nothing applied
    r = merge(http, braze, {"user_alias": {"alias_name": "Ubad", "alias_label": "line_id"}},
              {"external_id": "cust-1"})
    assert r.status_code == 400 and r.json()["errors"][0]["input_array"] == "merge_updates"
    braze.set_faults(poison_mode="error")
    r = identify(http, braze, ("cust-1", "Ua"), ("cust-2", "Ubad"))
    assert r.status_code == 201 and r.json()["aliases_processed"] == 1
    assert r.json()["errors"] == [{"type": "sandbox poison id", "input_array": "aliases_to_identify", "index": 1}]
    assert braze.profile(external_id="cust-1") and braze.profile(external_id="cust-2") is None
