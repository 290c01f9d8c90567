"""Braze REST client: one pooled requests.Session per process, and a pure
classifier that says what a response means for delivery (SPEC §4)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Union

import requests
from requests.adapters import HTTPAdapter

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


def _reset_at(headers: dict, now: float) -> float | None:
    raw = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if raw is None:
        retry = headers.get("Retry-After") or headers.get("retry-after")
        try:
            return now + float(retry) if retry is not None else None
        except ValueError:
            return None
    try:
        v = float(raw)
    except ValueError:
        return None
    # Braze sends epoch seconds; a small number is read as "seconds from now".
    return v if v > 1e9 else now + v


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
    def __init__(self, endpoint: str, api_key: str, *, timeout: float = 10.0, pool_size: int = 16,
                 session: requests.Session | None = None):
        self.endpoint = endpoint.rstrip("/")
        self.timeout = (CONNECT_TIMEOUT, timeout)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})

    def post(self, path: str, payload: dict, *, now: float) -> Outcome:
        try:
            resp = self.session.post(self.endpoint + path, data=json.dumps(payload), timeout=self.timeout)
        except requests.Timeout:
            return Retryable(f"timeout calling {path}")
        except requests.RequestException as e:
            return Retryable(f"{type(e).__name__} calling {path}")
        outcome = classify(resp.status_code, resp.headers, resp.text, now)
        if not isinstance(outcome, Delivered):
            log.warning("braze %s answered %s: %s", path, resp.status_code, getattr(outcome, "reason", ""))
        return outcome

    def track(self, attributes: list[dict], events: list[dict], *, now: float) -> Outcome:
        payload: dict = {}
        if attributes:
            payload["attributes"] = attributes
        if events:
            payload["events"] = events
        return self.post("/users/track", payload, now=now)
