"""Braze checks with a fake HTTP collaborator."""

import pytest

from linesync.doctor import braze_checks
from linesync.doctor.http import HttpFailure
from shared.check import FAIL, OK, SKIP
from tests.linesync.doctor_fakes import FakeHttp, reply

ENDPOINT = "https://rest.iad-01.braze.com"


def test_the_probe_changes_no_profile():
    body = braze_checks.probe_payload()
    (obj,) = body["attributes"]
    assert obj["_update_existing_only"] is True
    assert obj["external_id"].startswith("linesync-doctor-probe-")
    assert set(obj) == {"external_id", "_update_existing_only"}  # no attribute to write
    assert braze_checks.probe_payload()["attributes"][0]["external_id"] != obj["external_id"]


def test_accepted_key():
    http = FakeHttp({("POST", "/users/track"): reply(201, {"message": "success", "attributes_processed": 1})})
    c = braze_checks.api_key(http, ENDPOINT, "k3y", external_id="linesync-doctor-probe-x")
    assert c.status == OK
    (call,) = http.calls
    assert call["url"] == ENDPOINT + "/users/track"
    assert call["headers"]["Authorization"] == "Bearer k3y"
    assert call["json"] == {"attributes": [{"external_id": "linesync-doctor-probe-x", "_update_existing_only": True}]}


@pytest.mark.parametrize("status, words", [
    (401, "refused BRAZE_API_KEY"), (403, "may not call /users/track"), (404, "not a Braze REST endpoint"),
    (500, "Braze answered 500"), (418, "answered 418"),
])
def test_refusals(status, words):
    http = FakeHttp({("POST", "/users/track"): reply(status, {"message": "nope"})})
    c = braze_checks.api_key(http, ENDPOINT, "k3y")
    assert c.status == FAIL and words in c.detail and c.fix
    assert "k3y" not in c.detail + c.fix


@pytest.mark.parametrize("status", [200, 201, 400, 429])
def test_answers_that_mean_the_key_was_accepted(status):
    c = braze_checks.api_key(FakeHttp({("POST", "/users/track"): reply(status, {})}), ENDPOINT, "k")
    assert c.status == OK


def test_unreachable_and_unset():
    c = braze_checks.api_key(FakeHttp({("POST", "/users/track"): HttpFailure("could not connect")}), ENDPOINT, "k")
    assert c.status == FAIL and "could not connect" in c.detail
    assert "BRAZE_REST_ENDPOINT is not set" in braze_checks.api_key(FakeHttp(), None, "k").detail
    assert "BRAZE_API_KEY is not set" in braze_checks.api_key(FakeHttp(), ENDPOINT, None).detail


@pytest.mark.parametrize("gid, status", [
    ("0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab", OK), ("0B1E0B1E-AAAA-4BBB-8CCC-0123456789AB", OK),
    ("sg-test", FAIL), ("0b1e0b1e-aaaa-4bbb-8ccc-0123456789a", FAIL), ("", FAIL), (None, FAIL),
])
def test_subscription_group_id_looks_like_a_braze_id(gid, status):
    c = braze_checks.subscription_group(gid)
    assert c.status == status
    if status == FAIL:
        assert "BRAZE_SUBSCRIPTION_GROUP_ID" in c.detail and "Subscriptions" in c.fix


# ---- BRAZE_STATE_MODE: doctor says which mode is in force --------------------------------------

GID = "0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab"


@pytest.mark.parametrize("mode, group, words", [
    ("subscription_group", GID, ["BRAZE_STATE_MODE=subscription_group", GID]),
    ("attributes", None, ["BRAZE_STATE_MODE=attributes", "line_follow_state", "line_follow_state_at"]),
    ("both", GID, ["BRAZE_STATE_MODE=both", GID, "line_follow_state_at"]),
])
def test_the_state_mode_check_names_the_mode(mode, group, words):
    c = braze_checks.state_mode(mode, group)
    assert c.name == "braze.state_mode" and c.status == OK
    assert all(w in c.detail for w in words)
    assert "not used" not in c.detail


def test_attributes_mode_needs_no_group_and_says_a_set_one_is_unused():
    assert braze_checks.subscription_group(None, "attributes").status == SKIP
    assert "not used" in braze_checks.state_mode("attributes", GID).detail


@pytest.mark.parametrize("mode", ["subscription_group", "both"])
def test_a_missing_group_points_a_workspace_without_the_line_channel_to_attributes_mode(mode):
    c = braze_checks.subscription_group(None, mode)
    assert c.status == FAIL and f"BRAZE_STATE_MODE={mode}" in c.detail
    assert "BRAZE_STATE_MODE=attributes" in c.fix and "docs/braze-without-line-channel.md" in c.fix


def test_the_braze_section_in_attributes_mode_fails_nothing_without_a_group():
    from linesync.doctor.run import braze_section
    from shared.config import load_settings

    settings = load_settings({"BRAZE_REST_ENDPOINT": ENDPOINT, "BRAZE_API_KEY": "k", "BRAZE_STATE_MODE": "attributes"})
    http = FakeHttp({("POST", "/users/track"): reply(201, {"message": "success"})})
    checks = {c.name: c for c in braze_section(settings, http)}
    assert [c.status for c in checks.values()] == [OK, OK, SKIP]
    assert "BRAZE_STATE_MODE=attributes" in checks["braze.state_mode"].detail
