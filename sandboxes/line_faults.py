"""The LINE sandbox's injected faults: what it should get wrong, and their controls.

A mixin of :class:`sandboxes.line.LineSandbox` (its ``_lock`` and ``_faults``).
Each fault is applied where its concept lives: the followers faults in
sandboxes/line_followers.py, the webhook ones in sandboxes/line_webhook.py,
``latency_ms`` and ``page_time_ms`` in :meth:`sandboxes.line.LineSandbox.handle`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LineFaults:
    """What the sandbox should get wrong. See :meth:`LineSandbox.set_faults`."""

    forbidden: bool = False
    fail_pages: dict[int, int] = field(default_factory=dict)  # page index -> 500s left
    expire_tokens: bool = False
    latency_ms: float = 0.0
    page_time_ms: float = 0.0       # a followers page is answered this long after its request arrived (work included)
    webhook_unset: bool = False     # LINE has no webhook URL on file (whatever was PUT)
    webhook_inactive: bool = False  # "Use webhook" is off: the URL is kept, LINE sends nothing

    def to_json(self) -> dict[str, Any]:
        return {
            "forbidden": self.forbidden,
            "fail_pages": {str(k): v for k, v in sorted(self.fail_pages.items())},
            "expire_tokens": self.expire_tokens,
            "latency_ms": self.latency_ms,
            "page_time_ms": self.page_time_ms,
            "webhook_unset": self.webhook_unset,
            "webhook_inactive": self.webhook_inactive,
        }


class FaultControls:
    """Set, clear and read the faults."""

    _lock: threading.RLock
    _faults: LineFaults

    def set_faults(
        self,
        *,
        forbidden: bool | None = None,
        fail_pages: dict[int | str, int] | None = None,
        expire_tokens: bool | None = None,
        latency_ms: float | None = None,
        page_time_ms: float | None = None,
        webhook_unset: bool | None = None,
        webhook_inactive: bool | None = None,
    ) -> None:
        """Update the faults named (others stay as they are).

        ``forbidden``: every followers call answers 403. ``fail_pages``: ``{page
        index: n}`` — that page answers 500 ``n`` times, then works (page 0 is the
        request without ``start``). ``expire_tokens``: every ``start`` is rejected
        as expired. ``latency_ms``: delay every ``/v2`` request. ``page_time_ms``:
        answer each followers page that long after its request arrived, the
        sandbox's own work included (LINE's pace: each page in N ms).
        ``webhook_unset``: LINE has no webhook URL on file (a test delivery without
        an ``endpoint`` answers 400). ``webhook_inactive``: the URL is on file but
        "Use webhook" is off (``active: false``).
        """
        with self._lock:
            f = self._faults
            if forbidden is not None:
                f.forbidden = bool(forbidden)
            if fail_pages is not None:
                f.fail_pages = {int(k): int(v) for k, v in fail_pages.items()}
            if expire_tokens is not None:
                f.expire_tokens = bool(expire_tokens)
            if latency_ms is not None:
                f.latency_ms = float(latency_ms)
            if page_time_ms is not None:
                f.page_time_ms = float(page_time_ms)
            if webhook_unset is not None:
                f.webhook_unset = bool(webhook_unset)
            if webhook_inactive is not None:
                f.webhook_inactive = bool(webhook_inactive)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = LineFaults()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.to_json()
