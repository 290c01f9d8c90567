"""Braze REST client, shared by every sender thread of a worker process, and a
pure classifier that says what a response means for delivery (docs/reference.md, Guarantees).

The client is urllib3's ``PoolManager`` (the connection pool under requests):
it is documented thread-safe, which ``requests.Session`` is not, and one pool
of up to ``LINESYNC_DELIVERY_CONCURRENCY`` keep-alive connections serves all
the process's sender threads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Union

import urllib3

from workers import metrics

log = logging.getLogger(__name__)

# Connect quickly or treat Braze as down; the read timeout comes from settings.
CONNECT_TIMEOUT = 3.05
# Where X-RateLimit-Reset is missing on a 429, wait this long (s).
DEFAULT_RATE_PAUSE = 1.0


@dataclass(frozen=True)
class Delivered:
    # (input array, index, reason) for items Braze named in "errors"
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    pause_until: float | None = None  # X-RateLimit-Remaining: 0 → wait for the reset


@dataclass(frozen=True)
class RateLimited:
    reset_at: float


@dataclass(frozen=True)
class Retryable:
    reason: str


@dataclass(frozen=True)
class AuthFailure:
    reason: str


@dataclass(frozen=True)
class BadRequest:
    reason: str


Outcome = Union[Delivered, RateLimited, Retryable, AuthFailure, BadRequest]


# A reset value above this is epoch milliseconds, not seconds (year 5138 in seconds).
EPOCH_MS_ABOVE = 1e11
# A reset value above this is an epoch time; below, seconds from now (2001-09-09).
EPOCH_S_ABOVE = 1e9


def read_reset(raw: str | None, now: float) -> float | None:
    """An ``X-RateLimit-Reset`` / ``Retry-After`` value as epoch seconds, read sanely.

    Braze sends epoch seconds; epoch milliseconds and "seconds from now" are
    recognised too; anything else (negative, not a number) is ignored. How long a
    pause may last is capped where pauses are set (``BRAZE_PAUSE_MAX_SECONDS``).
    """
    if raw is None:
        return None
    try:
        v = float(raw.strip())
    except ValueError:
        return None
    if v != v or v < 0 or v == float("inf"):
        return None
    if v > EPOCH_MS_ABOVE:
        return v / 1000.0
    if v > EPOCH_S_ABOVE:
        return v
    return now + v


def _reset_at(headers, now: float) -> float | None:
    raw = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if raw is None:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    return read_reset(raw, now)


def _message(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("errors") or doc
        return str(msg)[:200]
    return str(doc)[:200]


def classify(status: int, headers: dict, text: str, now: float) -> Outcome:
    """What a /users/track (or identify/merge) response means. Pure."""
    reset_at = _reset_at(headers, now)
    if status == 429:
        return RateLimited(reset_at if reset_at and reset_at > now else now + DEFAULT_RATE_PAUSE)
    if 200 <= status < 300:
        errors = []
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}
        for e in (doc.get("errors") if isinstance(doc, dict) else None) or []:
            if isinstance(e, dict) and isinstance(e.get("index"), int):
                errors.append((str(e.get("input_array") or "attributes"), e["index"], str(e.get("type") or "error")))
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("x-ratelimit-remaining")
        pause = reset_at if (remaining is not None and remaining.strip() == "0" and reset_at and reset_at > now) else None
        return Delivered(errors, pause)
    if status in (401, 403, 404):
        return AuthFailure(f"HTTP {status}: {_message(text)}")
    if status == 408 or status >= 500:
        return Retryable(f"HTTP {status}: {_message(text)}")
    return BadRequest(f"HTTP {status}: {_message(text)}")


class BrazeClient:
    """POSTs JSON to Braze; safe to share between threads."""

    def __init__(self, endpoint: str, api_key: str, *, timeout: float = 10.0, pool_size: int = 16):
        self.endpoint = endpoint.rstrip("/")
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout)
        # block=True: never more connections than pool_size (one per sender thread).
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=True, retries=False)
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def post(self, path: str, payload: dict, *, now: float) -> Outcome:
        """Every request to Braze goes through here, timed and counted in flight (workers/metrics.py)."""
        body = json.dumps(payload).encode()
        m = metrics.braze_endpoint(path)
        started, status = m.start(), metrics.ERROR
        try:
            resp = self._pool.request("POST", self.endpoint + path, body=body,
                                      headers=self._headers, timeout=self._timeout)
            status = resp.status
        except urllib3.exceptions.TimeoutError:
            return Retryable(f"timeout calling {path}")
        except urllib3.exceptions.HTTPError as e:
            return Retryable(f"{type(e).__name__} calling {path}")
        finally:
            m.finish(started, status)
        text = resp.data.decode("utf-8", "replace")
        outcome = classify(resp.status, resp.headers, text, now)
        if not isinstance(outcome, Delivered):
            log.warning("braze %s answered %s: %s", path, resp.status, getattr(outcome, "reason", ""))
        return outcome

    def track(self, attributes: list[dict], events: list[dict], *, now: float) -> Outcome:
        payload: dict = {}
        if attributes:
            payload["attributes"] = attributes
        if events:
            payload["events"] = events
        metrics.track_batch(len(attributes) + len(events))
        return self.post("/users/track", payload, now=now)

    def close(self) -> None:
        self._pool.clear()
