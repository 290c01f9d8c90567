"""/users/track: auth, validation, profile creation, per-item errors, history."""

from __future__ import annotations

from tests.sandboxes.conftest import BRAZE_KEY

AUTH = {"Authorization": f"Bearer {BRAZE_KEY}"}
GROUP = "sg-1"


def alias_obj(uid: str, state: str = "subscribed", *, update_only: bool | None = False, **extra):
    obj = {"user_alias": {"alias_name": uid, "alias_label": "line_id"}, "native_line_id": uid,
           "subscription_groups": [{"subscription_group_id": GROUP, "subscription_state": state}], **extra}
    if update_only is not None:
        obj["_update_existing_only"] = update_only
    return obj


def track(http, braze, headers=AUTH, **body):
    return http.post(f"{braze.url}/users/track", json=body, headers=headers)


def test_creates_alias_profile_with_update_existing_only_false(http, braze):
    r = track(http, braze, attributes=[alias_obj("Ua")])
    assert r.status_code == 201
    assert r.json() == {"message": "success", "attributes_processed": 1}
    p = braze.profile(alias_name="Ua")
    assert p["native_line_id"] == "Ua"
    assert p["aliases"] == [{"alias_name": "Ua", "alias_label": "line_id"}]
    assert p["subscription_groups"] == {GROUP: "subscribed"}
    assert braze.subscription_state(GROUP, alias_name="Ua") == "subscribed"
    # the same over HTTP
    got = http.get(f"{braze.url}/_sandbox/profile", params={"alias_label": "line_id", "alias_name": "Ua"}).json()
    assert got["subscription_groups"] == {GROUP: "subscribed"}
    assert http.get(f"{braze.url}/_sandbox/profile", params={"alias_name": "nobody"}).status_code == 404


def test_alias_with_update_existing_only_true_or_omitted_is_skipped(http, braze):
    r = track(http, braze, attributes=[alias_obj("Ub", update_only=True), alias_obj("Uc", update_only=None)])
    assert r.status_code == 201 and "errors" not in r.json()
    assert braze.profiles() == []
    assert braze.stats()["skipped_missing_profiles"] == 2
    # an existing profile is updated whatever the flag
    track(http, braze, attributes=[alias_obj("Ub")])
    track(http, braze, attributes=[alias_obj("Ub", "unsubscribed", update_only=True)])
    assert braze.subscription_state(GROUP, alias_name="Ub") == "unsubscribed"


def test_external_id_creates_by_default_and_skips_when_update_only(http, braze):
    track(http, braze, attributes=[{"external_id": "cust-1", "native_line_id": "Ux", "tier": "gold"}])
    track(http, braze, attributes=[{"external_id": "cust-2", "_update_existing_only": True, "tier": "x"}])
    p = braze.profile(external_id="cust-1")
    assert p["native_line_id"] == "Ux" and p["custom_attributes"] == {"tier": "gold"}
    assert braze.profile(external_id="cust-2") is None
    got = http.get(f"{braze.url}/_sandbox/profile", params={"external_id": "cust-1"}).json()
    assert got["external_id"] == "cust-1"


def test_auth_required(http, braze):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": BRAZE_KEY}):
        r = track(http, braze, headers=headers, attributes=[alias_obj("Ua")])
        assert r.status_code == 401
        assert r.json() == {"message": "Invalid API key"}
        assert "X-RateLimit-Limit" in r.headers
    assert braze.profiles() == []


def test_not_json_is_400(http, braze):
    r = http.post(f"{braze.url}/users/track", data=b"{nope", headers=AUTH)
    assert r.status_code == 400
    r = http.post(f"{braze.url}/users/track", json=[1, 2], headers=AUTH)
    assert r.status_code == 400


def test_batch_size_counts_attributes_events_and_purchases_combined(http, braze):
    attrs = [alias_obj(f"U{i}") for i in range(70)]
    events = [{"external_id": f"c{i}", "name": "e", "time": "2024-01-01T00:00:00Z"} for i in range(6)]
    r = track(http, braze, attributes=attrs, events=events)
    assert r.status_code == 400
    assert "too many objects" in r.json()["message"]
    assert braze.profiles() == []
    r = track(http, braze, attributes=attrs, events=events[:5])
    assert r.status_code == 201
    assert r.json()["attributes_processed"] == 70 and r.json()["events_processed"] == 5
    assert braze.stats()["max_objects_in_request"] == 76


def test_identifier_rules_give_per_item_errors(http, braze):
    items = [
        alias_obj("Ugood"),
        {"native_line_id": "Unone"},  # no identifier
        {"external_id": "e1", "user_alias": {"alias_name": "U1", "alias_label": "line_id"}},  # two
        {"user_alias": {"alias_name": "U2"}, "_update_existing_only": False},  # incomplete alias
        {"external_id": 42},
        {"braze_id": "does-not-exist", "x": 1},  # valid, skipped
    ]
    r = track(http, braze, attributes=items)
    assert r.status_code == 201
    body = r.json()
    assert body["message"] == "success"
    assert body["attributes_processed"] == 2
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4]
    assert all(e["input_array"] == "attributes" and e["type"] for e in body["errors"])
    assert [p["aliases"][0]["alias_name"] for p in braze.profiles()] == ["Ugood"]


def test_bad_subscription_state_is_a_per_item_error(http, braze):
    bad_state = alias_obj("U1", "maybe")
    bad_group = alias_obj("U2")
    bad_group["subscription_groups"] = [{"subscription_group_id": 7, "subscription_state": "subscribed"}]
    r = track(http, braze, attributes=[bad_state, alias_obj("U3"), bad_group])
    assert r.status_code == 201
    assert [(e["index"], e["input_array"]) for e in r.json()["errors"]] == [(0, "attributes"), (2, "attributes")]
    assert "subscription_state" in r.json()["errors"][0]["type"]
    assert braze.profile(alias_name="U1") is None  # the bad item changed nothing
    assert braze.subscription_state(GROUP, alias_name="U3") == "subscribed"


def test_events_are_appended_and_validated(http, braze):
    track(http, braze, attributes=[{"external_id": "c1"}])
    r = track(http, braze, events=[
        {"external_id": "c1", "name": "line_follow", "time": "2024-05-01T10:00:00Z", "properties": {"a": 1}},
        {"external_id": "c1", "name": "bad", "time": "yesterday"},
    ])
    assert r.status_code == 201
    assert r.json()["events_processed"] == 1
    assert r.json()["errors"] == [{"type": "event time is not ISO 8601", "input_array": "events", "index": 1}]
    assert braze.profile(external_id="c1")["events"] == [
        {"name": "line_follow", "time": "2024-05-01T10:00:00Z", "properties": {"a": 1}}
    ]


def test_history_records_request_sequence(http, braze):
    track(http, braze, attributes=[alias_obj("Uh", "subscribed")])
    track(http, braze, attributes=[alias_obj("Uh", "unsubscribed"), alias_obj("Uo")])
    track(http, braze, attributes=[alias_obj("Uh", "subscribed")])
    history = braze.profile(alias_name="Uh")["history"]
    assert [h["state"] for h in history] == ["subscribed", "unsubscribed", "subscribed"]
    seqs = [h["seq"] for h in history]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    log = braze.requests()
    assert [e["seq"] for e in log] == seqs
    assert [e["n_objects"] for e in log] == [1, 2, 1]
    assert http.get(f"{braze.url}/_sandbox/requests", params={"since": seqs[1]}).json()["requests"] == log[2:]
    profiles = http.get(f"{braze.url}/_sandbox/profiles").json()["profiles"]
    assert {p["native_line_id"] for p in profiles} == {"Uh", "Uo"}


def test_reset_forgets_everything(http, braze):
    track(http, braze, attributes=[alias_obj("Ua")])
    assert http.post(f"{braze.url}/_sandbox/reset").status_code == 200
    assert braze.profiles() == [] and braze.requests() == []
    assert braze.stats()["requests_total"] == 0


def test_stats(http, braze):
    track(http, braze, attributes=[alias_obj("Ua"), alias_obj("Ub")])
    track(http, braze, headers={}, attributes=[alias_obj("Ua")])
    stats = http.get(f"{braze.url}/_sandbox/stats").json()
    assert stats["requests"] == {"/users/track": {"201": 1, "401": 1}}
    assert stats["objects_received"] == 3
    assert stats["max_objects_in_request"] == 2
    assert stats["rate_limited"] == 0
    assert sum(stats["track_requests_per_second"].values()) == 2
    assert stats["profiles"] == 2


def test_custom_attributes_are_kept_per_profile_with_their_braze_type(http, braze):
    """linesync's attributes mode: line_follow_state(_at) on the alias and the linked profile, newest write wins."""
    state = {"line_follow_state": "followed", "line_follow_state_at": "2026-12-06T04:59:12.345Z"}
    alias = {"user_alias": {"alias_name": "Ua", "alias_label": "line_id"}, "_update_existing_only": False,
             "native_line_id": "Ua", **state}
    r = track(http, braze, attributes=[alias, {"external_id": "crm-1", "native_line_id": "Ua", **state}])
    assert r.status_code == 201 and "errors" not in r.json()
    later = {"line_follow_state": "unfollowed", "line_follow_state_at": "2026-12-06T05:00:00.000Z"}
    assert track(http, braze, attributes=[{**alias, **later}]).status_code == 201
    profiles = {p["native_line_id"] + ":" + str(p["external_id"]): p
                for p in http.get(f"{braze.url}/_sandbox/profiles").json()["profiles"]}
    assert profiles["Ua:None"]["custom_attributes"] == later
    assert profiles["Ua:crm-1"]["custom_attributes"] == state
    for p in profiles.values():
        assert p["subscription_groups"] == {}  # attributes only: no group written
        assert p["custom_attribute_types"] == {"line_follow_state": "string", "line_follow_state_at": "time"}


def test_attribute_types():
    from sandboxes.braze_model import attribute_type

    assert [attribute_type(v) for v in (True, 3, 2.5, "x", "2026-12-06", "2026-12-06T04:59:12.345Z",
                                        "2026-12-06T04:59:12+09:00", [1], {"a": 1})] == [
        "boolean", "number", "number", "string", "string", "time", "time", "array", "object"]
