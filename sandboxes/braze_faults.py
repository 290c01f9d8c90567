"""The Braze sandbox's injected faults: forced statuses, latency and poisoned ids.

A mixin of :class:`sandboxes.braze.BrazeSandbox` (its ``_lock`` and ``_faults``,
a :class:`sandboxes.braze_model.Faults`).
"""

from __future__ import annotations

import threading
from typing import Any

from sandboxes.braze_model import Faults, FixedWindow, ItemError, _error, _item_ids
from sandboxes.server import Response, json_response


class FaultControls:
    """Set, clear and read the faults; apply them to a request."""

    _lock: threading.Lock
    _faults: Faults

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

    def _injected_fault(self, path: str, limiter: FixedWindow, headers: dict[str, str], now: float) -> Response | None:
        """The forced answer this request gets (lock held), counting it against ``count``; None = none."""
        f = self._faults
        if f.status is not None and f.count != 0 and f.applies_to(path):
            if f.count > 0:
                f.count -= 1
            if f.status == 429:
                headers = {**headers, "X-RateLimit-Remaining": "0", "Retry-After": str(limiter.retry_after(now))}
            return json_response(f.status, {"message": f"sandbox fault: status {f.status}"}, headers)
        return None

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
