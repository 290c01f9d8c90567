"""A Braze stand-in: ``/users/track``, ``/users/identify`` and ``/users/merge``, in memory.

It enforces what linesync must respect in real Braze — bearer auth, the
combined object cap per ``/users/track`` request, a fixed-window rate limit
with ``X-RateLimit-*`` headers and ``429`` — and records what it received so
tests can check it: profiles, a per-profile subscription history stamped with
the global request sequence number, request counts and a request log.

Braze semantics kept here (see Braze's REST API docs):

* a body that is not JSON is a ``400``; the rest of ``/users/track``'s rules
  are in sandboxes/braze_track.py, identify's and merge's in
  sandboxes/braze_identity.py;
* ``GET /_sandbox/profiles`` shows custom attributes with the type Braze would
  give each (an ISO 8601 date-time string is a ``time``).

``compact=True`` keeps each profile as its identifier and subscription states
only (sandboxes/braze_compact.py: ~120 B a profile, for runs of millions);
/users/identify and /users/merge then answer ``501``.

The sandbox is put together from one module per concept:

    braze.py            BrazeSandbox: state, limits, inspection, request dispatch
    braze_track.py      /users/track
    braze_identity.py   /users/identify, /users/merge
    braze_faults.py     injected statuses, latency and poisoned ids
    braze_admin.py      the /_sandbox/* control endpoints
    braze_model.py      profiles, their store, identifier rules, the rate window
    braze_compact.py    the compact store (identifier and subscription states only)

Everything is guarded by one lock; injected latency is slept outside it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from sandboxes.braze_admin import AdminApi
from sandboxes.braze_compact import CompactStore
from sandboxes.braze_faults import FaultControls
from sandboxes.braze_identity import MAX_IDENTIFY_ITEMS, IdentityApi
from sandboxes.braze_model import API_PATHS, IDENTIFY, MERGE, TRACK, Faults, FixedWindow, Identifier, _Store
from sandboxes.braze_track import TrackApi
from sandboxes.server import Request, Response, Sandbox, json_response, sleep_ms
from shared.config import RateLimit, parse_rate

__all__ = ["BrazeSandbox", "FixedWindow", "MAX_IDENTIFY_ITEMS"]

DEFAULT_API_KEY = "sandbox-key"
# Braze's documented /users/track ceiling and per-request object cap.
DEFAULT_TRACK_RATE_LIMIT = "3000/3s"
DEFAULT_BATCH_SIZE = 75
# Braze's shared budget for /users/identify, /users/merge and the other user endpoints.
DEFAULT_IDENTIFY_RATE_LIMIT = "20000/60s"
# The request log keeps this many most recent entries.
MAX_LOG_ENTRIES = 200_000


class BrazeSandbox(TrackApi, IdentityApi, FaultControls, AdminApi, Sandbox):
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
        compact: bool = False,
    ):
        super().__init__(host=host, port=port, clock=clock)
        self.api_key = api_key
        self.batch_size = batch_size
        self.compact = compact
        self._track_limit = FixedWindow(_rate(rate_limit))
        self._identify_limit = FixedWindow(_rate(identify_rate_limit))
        self._inflight = 0  # API requests arrived and not yet answered (survives reset: they are still running)
        self._reset_state()

    # ------------------------------------------------------------------ in-process API

    def _reset_state(self) -> None:
        self._store: _Store | CompactStore = CompactStore() if self.compact else _Store()
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

    def profiles(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.to_json() for p in self._store.all()]

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
                "profiles": len(self._store),
                "compact": self.compact,
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
        fault = self._injected_fault(path, limiter, headers, now)
        if fault is not None:
            return fault
        if parse_error:
            return json_response(400, {"message": "Invalid JSON: expected a JSON object"}, headers)
        if path == TRACK:
            status, payload = self._track(body, seq)
        elif self.compact:
            status, payload = 501, {"message": f"the sandbox runs compact (no identities kept): {path} is off"}
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


def _rate(value: str | RateLimit) -> RateLimit:
    return value if isinstance(value, RateLimit) else parse_rate(value)
