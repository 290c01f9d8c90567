"""The exact Braze objects of SPEC §4. Pure."""

from __future__ import annotations

from shared.events import STATE_NAMES

ALIAS_LABEL = "line_id"


def alias_object(line_user_id: str, state: str, group_id: str) -> dict:
    return {
        "user_alias": {"alias_name": line_user_id, "alias_label": ALIAS_LABEL},
        "_update_existing_only": False,
        "native_line_id": line_user_id,
        "subscription_groups": [_group(state, group_id)],
    }


def external_object(external_id: str, line_user_id: str, state: str | None, group_id: str) -> dict:
    obj: dict = {"external_id": external_id, "native_line_id": line_user_id}
    if state is not None:
        obj["subscription_groups"] = [_group(state, group_id)]
    return obj


def _group(state: str, group_id: str) -> dict:
    return {"subscription_group_id": group_id, "subscription_state": STATE_NAMES[state]}


def objects_for(line_user_id: str, state: str | None, external_ids: list[str], group_id: str) -> list[dict]:
    """Every object one LINE user's state produces: its alias profile, then each linked profile."""
    out = []
    if state is not None:
        out.append(alias_object(line_user_id, state, group_id))
    out.extend(external_object(x, line_user_id, state, group_id) for x in external_ids)
    return out
