"""A Braze stand-in: ``/users/track``, ``/users/identify`` and ``/users/merge``, in memory.

It enforces what linesync must respect in real Braze — bearer auth, the
combined object cap per ``/users/track`` request, a fixed-window rate limit
with ``X-RateLimit-*`` headers and ``429`` — and records what it received so
tests can check it: profiles, a per-profile subscription history stamped with
the global request sequence number, request counts and a request log.

Braze semantics kept here (see Braze's REST API docs):

* an attributes/events/purchases object names exactly one of ``external_id``,
  ``user_alias`` or ``braze_id``; failing those, ``email`` or ``phone`` is the
  identifier (and otherwise a plain profile field);
* ``_update_existing_only`` defaults to false for ``external_id`` (a missing
  profile is created) and to true for ``user_alias``, ``braze_id``, ``email``
  and ``phone`` (a missing profile is skipped silently unless the flag is
  explicitly false — the documented way to create an alias-only profile);
* every other key of an attributes object is a custom attribute, kept per
  profile (``null`` removes it); ``GET /_sandbox/profiles`` shows them with the
  type Braze would give each (an ISO 8601 date-time string is a ``time``);
* invalid items are reported per item in a ``201``'s ``errors`` array; a body
  that is not JSON, or has more objects than the batch size, is a ``400``;
* identify: alias-only profile gains the external_id, or is merged into the
  existing external_id profile (that profile's values win on conflict);
* merge: ``identifier_to_merge``'s data fills gaps in ``identifier_to_keep``
  (keep's values win), its aliases move over, and it is deleted.

Everything is guarded by one lock; injected latency is slept outside it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from sandboxes.braze_model import (
    API_PATHS, IDENTIFY, MERGE, TRACK, Faults, FixedWindow, Identifier, ItemError, Profile, _RESERVED, _Store,
    _check_time, _error, _item_ids, _object_ids, _parse_identifier, _parse_subscription_groups, _update_existing_only,
)
from sandboxes.server import (
    Request, Response, Sandbox, admin_body, json_response, reject_unknown, sleep_ms,
)
from shared.config import RateLimit, parse_rate

DEFAULT_API_KEY = "sandbox-key"
# Braze's documented /users/track ceiling and per-request object cap.
DEFAULT_TRACK_RATE_LIMIT = "3000/3s"
DEFAULT_BATCH_SIZE = 75
# Braze's shared budget for /users/identify, /users/merge and the other user endpoints.
DEFAULT_IDENTIFY_RATE_LIMIT = "20000/60s"
# /users/identify and /users/merge take at most this many items per request.
MAX_IDENTIFY_ITEMS = 50
# The request log keeps this many most recent entries.
MAX_LOG_ENTRIES = 200_000



class BrazeSandbox(Sandbox):
    """An in-memory Braze REST API. ``start()`` serves it; ``url`` is its base URL."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        rate_limit: str | RateLimit = DEFAULT_TRACK_RATE_LIMIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        identify_rate_limit: str | RateLimit = DEFAULT_IDENTIFY_RATE_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Any = time.time,
    ):
        super().__init__(host=host, port=port, clock=clock)
        self.api_key = api_key
        self.batch_size = batch_size
        self._track_limit = FixedWindow(_rate(rate_limit))
        self._identify_limit = FixedWindow(_rate(identify_rate_limit))
        self._inflight = 0  # API requests arrived and not yet answered (survives reset: they are still running)
        self._reset_state()

    # ------------------------------------------------------------------ in-process API

    def _reset_state(self) -> None:
        self._store = _Store()
        self._seq = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=MAX_LOG_ENTRIES)
        self._by_status: dict[str, dict[str, int]] = {}
        self._received = {"attributes": 0, "events": 0, "purchases": 0}
        self._max_objects = 0
        self._rate_limited = 0
        self._skipped = 0
        self._per_second: dict[int, int] = {}
        self._faults = Faults()
        self._track_limit = FixedWindow(self._track_limit.rate)
        self._identify_limit = FixedWindow(self._identify_limit.rate)
        self._inflight_peak = self._inflight

    def reset(self) -> None:
        """Forget profiles, counters, the log, faults and rate-limit windows (limits stay)."""
        with self._lock:
            self._reset_state()

    def configure(
        self,
        *,
        rate_limit: str | RateLimit | None = None,
        batch_size: int | None = None,
        identify_rate_limit: str | RateLimit | None = None,
        api_key: str | None = None,
    ) -> None:
        """Change limits at run time (a changed rate limit starts a fresh window)."""
        with self._lock:
            if rate_limit is not None:
                self._track_limit = FixedWindow(_rate(rate_limit))
            if identify_rate_limit is not None:
                self._identify_limit = FixedWindow(_rate(identify_rate_limit))
            if batch_size is not None:
                if int(batch_size) <= 0:
                    raise ValueError("batch_size must be positive")
                self.batch_size = int(batch_size)
            if api_key is not None:
                self.api_key = api_key

    def config(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate_limit": str(self._track_limit.rate),
                "identify_rate_limit": str(self._identify_limit.rate),
                "batch_size": self.batch_size,
            }

    def set_faults(
        self,
        *,
        status: int | None = None,
        count: int | None = None,
        endpoint: str | None = None,
        latency_ms: float | None = None,
        poison_ids: list[str] | None = None,
        poison_mode: str | None = None,
    ) -> None:
        """Update the faults named (others stay as they are).

        ``status``/``count``: answer the next ``count`` requests to ``endpoint``
        (default ``/users/track``, ``"*"`` = any API path) with ``status``
        (``count`` defaults to 1; negative = until cleared). ``latency_ms``: delay
        every request to ``endpoint``. ``poison_ids``: a ``/users/track``,
        ``/users/identify`` or ``/users/merge`` request with an object (or item)
        whose external_id / alias_name / native_line_id / braze_id is listed gets
        a whole-request ``400`` (``poison_mode="400"``) or that item reported in
        the ``201``'s ``errors`` and left alone (``poison_mode="error"``).
        """
        if poison_mode is not None and poison_mode not in ("400", "error"):
            raise ValueError("poison_mode must be '400' or 'error'")
        if status is not None and not 100 <= int(status) <= 599:
            raise ValueError("status must be an HTTP status code")
        with self._lock:
            f = self._faults
            if status is not None:
                f.status = int(status)
                f.count = 1 if count is None else int(count)
            elif count is not None:
                f.count = int(count)
            if endpoint is not None:
                f.endpoint = endpoint
            if latency_ms is not None:
                f.latency_ms = float(latency_ms)
            if poison_ids is not None:
                f.poison_ids = frozenset(str(i) for i in poison_ids)
            if poison_mode is not None:
                f.poison_mode = poison_mode

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = Faults()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.to_json()

    def profiles(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.to_json() for p in self._store.by_braze.values()]

    def profile(
        self,
        *,
        external_id: str | None = None,
        alias_name: str | None = None,
        alias_label: str = "line_id",
        braze_id: str | None = None,
    ) -> dict[str, Any] | None:
        """One profile (as in :meth:`profiles`) by external_id, alias or braze_id; None if absent."""
        if external_id is not None:
            ident: Identifier = ("external_id", external_id)
        elif alias_name is not None:
            ident = ("user_alias", (alias_name, alias_label))
        elif braze_id is not None:
            ident = ("braze_id", braze_id)
        else:
            raise ValueError("name external_id, alias_name or braze_id")
        with self._lock:
            p = self._store.find(ident)
            return p.to_json() if p else None

    def subscription_state(self, group_id: str, **identifier: str) -> str | None:
        """``"subscribed"``/``"unsubscribed"``/None for a profile named as in :meth:`profile`."""
        p = self.profile(**identifier)
        return p["subscription_groups"].get(group_id) if p else None

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Log entries ``{seq, t, path, status, n_objects}`` with ``seq > since``."""
        with self._lock:
            return [dict(e) for e in self._log if e["seq"] > since]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            per_second = {str(k): v for k, v in sorted(self._per_second.items())}
            return {
                "requests": {path: dict(c) for path, c in self._by_status.items()},
                "requests_total": self._seq,
                "objects_received": sum(self._received.values()),
                "attributes_received": self._received["attributes"],
                "events_received": self._received["events"],
                "purchases_received": self._received["purchases"],
                "rate_limited": self._rate_limited,
                "max_objects_in_request": self._max_objects,
                "skipped_missing_profiles": self._skipped,
                "track_requests_per_second": per_second,
                "max_track_requests_per_second": max(self._per_second.values(), default=0),
                "profiles": len(self._store.by_braze),
                "inflight": self._inflight,
                "inflight_peak": self._inflight_peak,
            }

    # ------------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path.startswith("/_sandbox/"):
            return self._admin(request, path)
        if path in API_PATHS:
            if request.method != "POST":
                return json_response(405, {"message": "method not allowed"})
            return self._api(request, path)
        return json_response(404, {"message": "not found"})

    def _api(self, request: Request, path: str) -> Response:
        try:
            body: Any = request.json()
            parse_error = not isinstance(body, dict)
        except (ValueError, UnicodeDecodeError):
            body, parse_error = None, True
        with self._lock:
            latency = self._faults.latency_ms if self._faults.applies_to(path) else 0.0
            self._inflight += 1  # in flight from arrival (before the injected latency) until answered
            self._inflight_peak = max(self._inflight_peak, self._inflight)
        try:
            sleep_ms(latency)
            with self._lock:
                now = self._now()
                self._seq += 1
                seq = self._seq
                n_objects = self._count_objects(body, path) if not parse_error else 0
                response = self._api_locked(request, path, body, parse_error, seq, now)
                self._record(seq, now, path, response.status, n_objects)
                return response
        finally:
            with self._lock:
                self._inflight -= 1

    def _api_locked(
        self, request: Request, path: str, body: Any, parse_error: bool, seq: int, now: float
    ) -> Response:
        limiter = self._track_limit if path == TRACK else self._identify_limit
        if request.bearer() != self.api_key:
            return json_response(401, {"message": "Invalid API key"}, limiter.headers(now))
        if not limiter.hit(now):
            self._rate_limited += 1
            headers = {**limiter.headers(now), "Retry-After": str(limiter.retry_after(now))}
            return json_response(429, {"message": "Rate limit exceeded"}, headers)
        headers = limiter.headers(now)
        f = self._faults
        if f.status is not None and f.count != 0 and f.applies_to(path):
            if f.count > 0:
                f.count -= 1
            if f.status == 429:
                headers = {**headers, "X-RateLimit-Remaining": "0", "Retry-After": str(limiter.retry_after(now))}
            return json_response(f.status, {"message": f"sandbox fault: status {f.status}"}, headers)
        if parse_error:
            return json_response(400, {"message": "Invalid JSON: expected a JSON object"}, headers)
        if path == TRACK:
            status, payload = self._track(body, seq)
        elif path == IDENTIFY:
            status, payload = self._identify(body)
        else:
            status, payload = self._merge(body)
        return json_response(status, payload, headers)

    def _count_objects(self, body: dict[str, Any], path: str) -> int:
        if path == IDENTIFY:
            keys: tuple[str, ...] = ("aliases_to_identify",)
        elif path == MERGE:
            keys = ("merge_updates",)
        else:
            keys = ("attributes", "events", "purchases")
        n = 0
        for key in keys:
            v = body.get(key)
            if isinstance(v, list):
                n += len(v)
                if path == TRACK:
                    self._received[key] += len(v)
        if path == TRACK:
            self._max_objects = max(self._max_objects, n)
        return n

    def _record(self, seq: int, now: float, path: str, status: int, n_objects: int) -> None:
        self._log.append({"seq": seq, "t": now, "path": path, "status": status, "n_objects": n_objects})
        counts = self._by_status.setdefault(path, {})
        counts[str(status)] = counts.get(str(status), 0) + 1
        if path == TRACK:
            second = int(now)
            self._per_second[second] = self._per_second.get(second, 0) + 1

    # ------------------------------------------------------------------ /users/track

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

    # ------------------------------------------------------------------ identify / merge

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

    def _poison_request(self, array: str, items: list) -> tuple[int, dict[str, Any]] | None:
        """The whole-request 400 an identify/merge request holding a poisoned item gets (mode "400")."""
        if not self._faults.poison_ids or self._faults.poison_mode != "400":
            return None
        bad = [i for i, item in enumerate(items) if _item_ids(item) & self._faults.poison_ids]
        if not bad:
            return None
        return 400, {"message": "sandbox poison: request rejected",
                     "errors": [_error("sandbox poison id", array, i) for i in bad]}

    def _check_poison(self, item: dict) -> None:
        """A poisoned identify/merge item (mode "error") is reported in the 201's errors, not applied."""
        if self._faults.poison_ids and _item_ids(item) & self._faults.poison_ids:
            raise ItemError("sandbox poison id")

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

    # ------------------------------------------------------------------ /_sandbox/*

    def _admin(self, request: Request, path: str) -> Response:
        route = (request.method, path)
        try:
            if route == ("GET", "/_sandbox/health"):
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/profiles"):
                return json_response(200, {"profiles": self.profiles()})
            if route == ("GET", "/_sandbox/profile"):
                q = request.query
                if "external_id" in q:
                    found = self.profile(external_id=q["external_id"])
                elif "alias_name" in q:
                    found = self.profile(alias_name=q["alias_name"], alias_label=q.get("alias_label", "line_id"))
                elif "braze_id" in q:
                    found = self.profile(braze_id=q["braze_id"])
                else:
                    return json_response(400, {"message": "give external_id, alias_name(+alias_label) or braze_id"})
                if found is None:
                    return json_response(404, {"message": "no such profile"})
                return json_response(200, found)
            if route == ("GET", "/_sandbox/stats"):
                return json_response(200, self.stats())
            if route == ("GET", "/_sandbox/requests"):
                since = int(request.query.get("since", "0") or 0)
                return json_response(200, {"requests": self.requests(since)})
            if route == ("GET", "/_sandbox/faults"):
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/faults"):
                body = admin_body(request)
                if body.pop("clear", False):
                    self.clear_faults()
                allowed = {"status", "count", "endpoint", "latency_ms", "poison_ids", "poison_mode"}
                reject_unknown(body, allowed)
                self.set_faults(**body)
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/config"):
                return json_response(200, self.config())
            if route == ("POST", "/_sandbox/config"):
                body = admin_body(request)
                reject_unknown(body, {"rate_limit", "batch_size", "identify_rate_limit", "api_key"})
                self.configure(**body)
                return json_response(200, self.config())
        except (ValueError, TypeError) as e:
            return json_response(400, {"message": str(e)})
        return json_response(404, {"message": "no such sandbox endpoint"})


def _rate(value: str | RateLimit) -> RateLimit:
    return value if isinstance(value, RateLimit) else parse_rate(value)

