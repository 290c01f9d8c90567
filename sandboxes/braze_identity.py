"""The Braze sandbox's ``/users/identify`` and ``/users/merge``.

* identify: an alias-only profile gains the external_id, or is merged into the
  existing external_id profile (that profile's values win on conflict);
* merge: ``identifier_to_merge``'s data fills gaps in ``identifier_to_keep``
  (keep's values win), its aliases move over, and it is deleted.

At most MAX_IDENTIFY_ITEMS items per request. A mixin of
:class:`sandboxes.braze.BrazeSandbox`, called with its lock held.
"""

from __future__ import annotations

from typing import Any

from sandboxes.braze_model import Identifier, ItemError, _Store, _error, _parse_identifier

# /users/identify and /users/merge take at most this many items per request.
MAX_IDENTIFY_ITEMS = 50


class IdentityApi:
    """``/users/identify`` and ``/users/merge`` (uses the sandbox's store, and FaultControls's
    ``_poison_request`` / ``_check_poison``)."""

    _store: _Store

    def _identify(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = body.get("aliases_to_identify")
        if not isinstance(items, list) or not items:
            return 400, {"message": "'aliases_to_identify' must be a non-empty array"}
        if len(items) > MAX_IDENTIFY_ITEMS:
            return 400, {"message": f"too many aliases_to_identify: at most {MAX_IDENTIFY_ITEMS} per request"}
        refused = self._poison_request("aliases_to_identify", items)
        if refused:
            return refused
        errors, processed = [], 0
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ItemError("items must be objects")
                self._check_poison(item)
                external_id = item.get("external_id")
                if not isinstance(external_id, str) or not external_id:
                    raise ItemError("external_id must be a non-empty string")
                if "user_alias" not in item:
                    raise ItemError("user_alias is required")
                _, alias = _parse_identifier({"user_alias": item["user_alias"]})
                self._identify_one(external_id, alias)
                processed += 1
            except ItemError as e:
                errors.append(_error(str(e), "aliases_to_identify", i))
        payload: dict[str, Any] = {"message": "success", "aliases_processed": processed}
        if errors:
            payload["errors"] = errors
        return 201, payload

    def _identify_one(self, external_id: str, alias: tuple[str, str]) -> None:
        store = self._store
        alias_profile = store.by_alias.get(alias)
        if alias_profile is None:
            return  # nothing to identify
        if alias_profile.external_id == external_id:
            return
        if alias_profile.external_id is not None:
            raise ItemError("alias already belongs to a profile with another external_id")
        known = store.by_external.get(external_id)
        if known is None:
            store.set_external_id(alias_profile, external_id)
        else:
            store.merge(alias_profile, known)

    def _merge(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = body.get("merge_updates")
        if not isinstance(items, list) or not items:
            return 400, {"message": "'merge_updates' must be a non-empty array"}
        if len(items) > MAX_IDENTIFY_ITEMS:
            return 400, {"message": f"too many merge_updates: at most {MAX_IDENTIFY_ITEMS} per request"}
        refused = self._poison_request("merge_updates", items)
        if refused:
            return refused
        errors = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ItemError("items must be objects")
                self._check_poison(item)
                to_merge = self._merge_identifier(item.get("identifier_to_merge"), "identifier_to_merge")
                to_keep = self._merge_identifier(item.get("identifier_to_keep"), "identifier_to_keep")
                src, dst = self._store.find(to_merge), self._store.find(to_keep)
                if src is not None and dst is not None and src is not dst:
                    self._store.merge(src, dst)
            except ItemError as e:
                errors.append(_error(str(e), "merge_updates", i))
        payload: dict[str, Any] = {"message": "success"}
        if errors:
            payload["errors"] = errors
        return 202, payload

    @staticmethod
    def _merge_identifier(value: Any, what: str) -> Identifier:
        if not isinstance(value, dict):
            raise ItemError(f"{what} must be an object")
        if not any(k in value for k in ("external_id", "user_alias", "braze_id")):
            raise ItemError(f"{what} needs external_id, user_alias or braze_id")
        try:
            return _parse_identifier(value)
        except ItemError as e:
            raise ItemError(f"{what}: {e}") from None
