"""The Braze sandbox's ``/users/track``: attributes, events and purchases applied to profiles.

Braze semantics kept here (see Braze's REST API docs):

* an attributes/events/purchases object names exactly one of ``external_id``,
  ``user_alias`` or ``braze_id``; failing those, ``email`` or ``phone`` is the
  identifier (and otherwise a plain profile field);
* ``_update_existing_only`` defaults to false for ``external_id`` (a missing
  profile is created) and to true for ``user_alias``, ``braze_id``, ``email``
  and ``phone`` (a missing profile is skipped silently unless the flag is
  explicitly false — the documented way to create an alias-only profile);
* every other key of an attributes object is a custom attribute, kept per
  profile (``null`` removes it);
* invalid items are reported per item in a ``201``'s ``errors`` array; more
  objects than the batch size is a ``400``.

A mixin of :class:`sandboxes.braze.BrazeSandbox`, called with its lock held.
"""

from __future__ import annotations

from typing import Any

from sandboxes.braze_compact import CompactStore
from sandboxes.braze_model import (
    _RESERVED, Faults, ItemError, Profile, _Store, _check_time, _error, _object_ids, _parse_identifier,
    _parse_subscription_groups, _update_existing_only,
)


class TrackApi:
    """``/users/track`` (uses the sandbox's store, faults, batch size and skip counter)."""

    _store: _Store | CompactStore
    _faults: Faults
    _skipped: int
    batch_size: int

    def _track(self, body: dict[str, Any], seq: int) -> tuple[int, dict[str, Any]]:
        arrays: dict[str, list[Any]] = {}
        for key in ("attributes", "events", "purchases"):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, list):
                return 400, {"message": f"'{key}' must be an array"}
            arrays[key] = value
        total = sum(len(v) for v in arrays.values())
        if total > self.batch_size:
            return 400, {
                "message": f"too many objects: {total} in one request, the limit is {self.batch_size} "
                "(attributes, events and purchases combined)"
            }
        if total == 0:
            return 400, {"message": "no attributes, events or purchases in the request"}
        errors: list[dict[str, Any]] = []
        poisoned: list[tuple[str, int]] = []
        if self._faults.poison_ids:
            poisoned = [
                (key, i) for key, items in arrays.items() for i, obj in enumerate(items)
                if _object_ids(obj) & self._faults.poison_ids
            ]
            if poisoned and self._faults.poison_mode == "400":
                return 400, {
                    "message": "sandbox poison: request rejected",
                    "errors": [_error("sandbox poison id", key, i) for key, i in poisoned],
                }
        skip = set(poisoned)
        handlers = {"attributes": self._apply_attributes, "events": self._apply_event, "purchases": self._apply_purchase}
        processed = {key: 0 for key in arrays}
        for key, items in arrays.items():
            for i, obj in enumerate(items):
                if (key, i) in skip:
                    errors.append(_error("sandbox poison id", key, i))
                    continue
                try:
                    if not isinstance(obj, dict):
                        raise ItemError(f"{key} items must be objects")
                    handlers[key](obj, seq)
                    processed[key] += 1
                except ItemError as e:
                    errors.append(_error(str(e), key, i))
        payload: dict[str, Any] = {"message": "success"}
        for key, n in processed.items():
            payload[f"{key}_processed"] = n
        if errors:
            payload["errors"] = errors
        return 201, payload

    def _target(self, obj: dict[str, Any]) -> Profile | None:
        """Validate the identifier; find or (if allowed) create the profile; None = skip."""
        ident = _parse_identifier(obj)
        update_only = _update_existing_only(obj, ident[0])
        p = self._store.find(ident)
        if p is None and not update_only and ident[0] != "braze_id":
            p = self._store.create(ident)
        return p

    def _apply_attributes(self, obj: dict[str, Any], seq: int) -> None:
        groups = _parse_subscription_groups(obj["subscription_groups"]) if "subscription_groups" in obj else []
        native = obj.get("native_line_id")
        if native is not None and not isinstance(native, str):
            raise ItemError("native_line_id must be a string")
        p = self._target(obj)
        if p is None:
            self._skipped += 1
            return
        if native is not None:
            p.native_line_id = native
        for key, value in obj.items():
            if key in _RESERVED:
                continue
            if value is None:
                p.custom_attributes.pop(key, None)
            else:
                p.custom_attributes[key] = value
        for gid, state in groups:
            p.subscription_groups[gid] = state
            p.history.append({"seq": seq, "group": gid, "state": state})
        self._store.save(p)

    def _apply_event(self, obj: dict[str, Any], seq: int) -> None:
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise ItemError("event name must be a non-empty string")
        when = _check_time(obj.get("time"), "event")
        props = obj.get("properties", {})
        if not isinstance(props, dict):
            raise ItemError("event properties must be an object")
        p = self._target(obj)
        if p is None:
            self._skipped += 1
            return
        p.events.append({"name": name, "time": when, "properties": props})
        self._store.save(p)

    def _apply_purchase(self, obj: dict[str, Any], seq: int) -> None:
        product, currency, price = obj.get("product_id"), obj.get("currency"), obj.get("price")
        if not isinstance(product, str) or not product:
            raise ItemError("purchase product_id must be a non-empty string")
        if not isinstance(currency, str) or len(currency) != 3:
            raise ItemError("purchase currency must be a 3-letter code")
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            raise ItemError("purchase price must be a number")
        when = _check_time(obj.get("time"), "purchase")
        p = self._target(obj)
        if p is None:
            self._skipped += 1
            return
        p.purchases.append({"product_id": product, "currency": currency, "price": price, "time": when,
                            "properties": obj.get("properties", {})})
        self._store.save(p)
