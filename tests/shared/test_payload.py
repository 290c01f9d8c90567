"""shared/payload.py: the exact /users/track objects in each BRAZE_STATE_MODE (pure)."""

from __future__ import annotations

import pytest

from shared import payload
from shared.events import make_version

U = "U" + "a" * 32
GROUP = "0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab"
# 2026-12-06T04:59:12.345Z, arrived 2 s later: the version keeps the effective time, not the arrival.
T = 1796533152345
V = make_version(T, T + 2000, 7, 3)
ALIAS = {"user_alias": {"alias_name": U, "alias_label": "line_id"}, "_update_existing_only": False,
         "native_line_id": U}


def test_default_mode_is_the_subscription_group_payload():
    assert payload.objects_for(U, "S", [], GROUP, version=V) == [
        {**ALIAS, "subscription_groups": [{"subscription_group_id": GROUP, "subscription_state": "subscribed"}]}]
    assert payload.objects_for(U, "U", [], GROUP) == [  # no version needed for the group
        {**ALIAS, "subscription_groups": [{"subscription_group_id": GROUP, "subscription_state": "unsubscribed"}]}]


@pytest.mark.parametrize("state, word", [("S", "followed"), ("U", "unfollowed")])
def test_attributes_mode_carries_the_state_and_its_time_instead_of_the_group(state, word):
    got = payload.objects_for(U, state, [], "", version=V, mode="attributes")
    assert got == [{**ALIAS, "line_follow_state": word, "line_follow_state_at": "2026-12-06T04:59:12.345Z"}]


def test_both_mode_carries_both():
    (obj,) = payload.objects_for(U, "S", [], GROUP, version=V, mode="both")
    assert obj == {**ALIAS, "subscription_groups": [{"subscription_group_id": GROUP, "subscription_state": "subscribed"}],
                   "line_follow_state": "followed", "line_follow_state_at": "2026-12-06T04:59:12.345Z"}


@pytest.mark.parametrize("mode", ["subscription_group", "attributes", "both"])
def test_every_linked_profile_gets_the_same_state_fields(mode):
    alias, *linked = payload.objects_for(U, "U", ["crm-1", "crm-2"], GROUP, version=V, mode=mode)
    fields = {k: v for k, v in alias.items() if k not in ALIAS}
    assert linked == [{"external_id": x, "native_line_id": U, **fields} for x in ("crm-1", "crm-2")]


@pytest.mark.parametrize("mode", ["subscription_group", "attributes", "both"])
def test_a_linked_profile_before_any_state_gets_only_the_line_id(mode):
    assert payload.objects_for(U, None, ["crm-1"], GROUP, mode=mode) == [{"external_id": "crm-1", "native_line_id": U}]


def test_a_resync_version_dates_the_state_at_the_run_start():
    started = 1796533000000
    base = make_version(started, started + 90_000, 0, 0)  # stamped as workers/resync.py does
    (obj,) = payload.objects_for(U, "S", [], "", version=base, mode="attributes")
    assert obj["line_follow_state_at"] == "2026-12-06T04:56:40.000Z"


@pytest.mark.parametrize("ms, text", [(0, "1970-01-01T00:00:00.000Z"), (1796533152005, "2026-12-06T04:59:12.005Z"),
                                      (1796533152999, "2026-12-06T04:59:12.999Z")])
def test_iso_ms(ms, text):
    assert payload.iso_ms(ms) == text


def test_attributes_need_the_version_and_a_known_mode():
    with pytest.raises(ValueError):
        payload.objects_for(U, "S", [], "", mode="attributes")
    with pytest.raises(ValueError):
        payload.objects_for(U, "S", [], GROUP, version=V, mode="attribute")


@pytest.mark.parametrize("mode, words", [
    ("subscription_group", ["BRAZE_STATE_MODE=subscription_group", GROUP]),
    ("attributes", ["BRAZE_STATE_MODE=attributes", "line_follow_state", "line_follow_state_at"]),
    ("both", ["BRAZE_STATE_MODE=both", GROUP, "line_follow_state_at"]),
])
def test_describe_names_the_mode(mode, words):
    text = payload.describe(mode, GROUP)
    assert all(w in text for w in words)
    if mode == "attributes":
        assert "subscription group" not in text
