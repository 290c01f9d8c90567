"""The exact Braze objects (docs/reference.md, "What reaches Braze"). Pure.

Where a LINE user's follow state goes depends on ``BRAZE_STATE_MODE``:

* ``subscription_group`` (default): the LINE subscription group
  ``BRAZE_SUBSCRIPTION_GROUP_ID``, ``subscribed`` / ``unsubscribed`` — for a
  workspace with Braze's LINE channel, whose LINE sends and segments use it;
* ``attributes``: the custom attributes ``line_follow_state`` (``followed`` /
  ``unfollowed``) and ``line_follow_state_at`` (the state's effective time, an
  ISO 8601 UTC string with milliseconds, which Braze stores as a time) — for a
  workspace without the LINE channel, which has no subscription group to write;
* ``both``: both sets of fields in the same object.

Every other field, and which objects are sent (the alias profile, then each
linked external_id profile), is the same in every mode.
"""

from __future__ import annotations

import datetime as dt

from shared.config import STATE_MODES
from shared.events import STATE_NAMES, SUBSCRIBED, UNSUBSCRIBED
from shared.state import effective_ms

ALIAS_LABEL = "line_id"
SUBSCRIPTION_GROUP, ATTRIBUTES, BOTH = STATE_MODES
STATE_ATTRIBUTE = "line_follow_state"
STATE_AT_ATTRIBUTE = "line_follow_state_at"
FOLLOW_STATES = {SUBSCRIBED: "followed", UNSUBSCRIBED: "unfollowed"}


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds: ``2026-12-06T04:59:12.345Z``."""
    seconds, millis = divmod(int(ms), 1000)
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def state_fields(state: str, version: str | None, group_id: str, mode: str = SUBSCRIPTION_GROUP) -> dict:
    """The fields that carry ``state`` (S/U) in ``mode``; ``version`` dates it (needed unless mode is the group)."""
    if mode not in STATE_MODES:
        raise ValueError(f"unknown state mode {mode!r}")
    out: dict = {}
    if mode != ATTRIBUTES:
        out["subscription_groups"] = [_group(state, group_id)]
    if mode != SUBSCRIPTION_GROUP:
        if version is None:
            raise ValueError("a state written as attributes needs its version (its time)")
        out[STATE_ATTRIBUTE] = FOLLOW_STATES[state]
        out[STATE_AT_ATTRIBUTE] = iso_ms(effective_ms(version))
    return out


def alias_object(line_user_id: str, state: str, group_id: str, *, version: str | None = None,
                 mode: str = SUBSCRIPTION_GROUP) -> dict:
    return {
        "user_alias": {"alias_name": line_user_id, "alias_label": ALIAS_LABEL},
        "_update_existing_only": False,
        "native_line_id": line_user_id,
        **state_fields(state, version, group_id, mode),
    }


def external_object(external_id: str, line_user_id: str, state: str | None, group_id: str, *,
                    version: str | None = None, mode: str = SUBSCRIPTION_GROUP) -> dict:
    obj: dict = {"external_id": external_id, "native_line_id": line_user_id}
    if state is not None:
        obj.update(state_fields(state, version, group_id, mode))
    return obj


def _group(state: str, group_id: str) -> dict:
    return {"subscription_group_id": group_id, "subscription_state": STATE_NAMES[state]}


def objects_for(line_user_id: str, state: str | None, external_ids: list[str], group_id: str, *,
                version: str | None = None, mode: str = SUBSCRIPTION_GROUP) -> list[dict]:
    """Every object one LINE user's state produces: its alias profile, then each linked profile.

    ``version`` is the state's version (shared/state.py); attributes modes date the state with it.
    """
    out = []
    if state is not None:
        out.append(alias_object(line_user_id, state, group_id, version=version, mode=mode))
    out.extend(external_object(x, line_user_id, state, group_id, version=version, mode=mode) for x in external_ids)
    return out


def destination(mode: str, group_id: str | None) -> str:
    """Where the follow state goes in Braze in ``mode``, in words."""
    attrs = f"custom attributes {STATE_ATTRIBUTE} and {STATE_AT_ATTRIBUTE}"
    group = f"subscription group {group_id or '(BRAZE_SUBSCRIPTION_GROUP_ID unset)'}"
    return {SUBSCRIPTION_GROUP: group, ATTRIBUTES: attrs, BOTH: f"{group} and {attrs}"}[mode]


def describe(mode: str, group_id: str | None) -> str:
    """The mode in force and what it writes (doctor, start-up log, status page)."""
    return f"BRAZE_STATE_MODE={mode}: the follow state is written to the {destination(mode, group_id)}"
