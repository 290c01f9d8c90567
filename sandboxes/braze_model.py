"""The Braze sandbox's data model: profiles and their store, identifier rules,
the fixed-window rate limit and injected faults. No HTTP here (sandboxes/braze.py
and its braze_*.py parts)."""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.config import RateLimit

TRACK = "/users/track"
IDENTIFY = "/users/identify"
MERGE = "/users/merge"
API_PATHS = (TRACK, IDENTIFY, MERGE)
SUBSCRIPTION_STATES = ("subscribed", "unsubscribed")
# Keys of an attributes object that are not custom attributes.
_RESERVED = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "subscription_groups", "native_line_id"}
)

# Braze stores a custom attribute whose value is an ISO 8601 date-time string as a time (it can then be
# segmented with before/after and "more/less than N days ago"); the sandbox shows each attribute's type.
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")

Identifier = tuple[str, Any]  # ("external_id", "x") | ("user_alias", (name, label)) | ("braze_id"|"email"|"phone", v)


class FixedWindow:
    """``limit`` requests per ``period`` seconds, windows aligned to the epoch.

    ``hit(now)`` counts a request and says whether it is allowed; ``headers(now)``
    gives Braze's ``X-RateLimit-*`` headers (reset in whole epoch seconds).
    """

    def __init__(self, rate: RateLimit):
        self.rate = rate
        self._window = -1
        self._count = 0

    def _roll(self, now: float) -> None:
        window = math.floor(now / self.rate.period)
        if window != self._window:
            self._window, self._count = window, 0

    def reset_at(self, now: float) -> float:
        self._roll(now)
        return (self._window + 1) * self.rate.period

    def hit(self, now: float) -> bool:
        self._roll(now)
        if self._count >= self.rate.requests:
            return False
        self._count += 1
        return True

    def headers(self, now: float) -> dict[str, str]:
        self._roll(now)
        return {
            "X-RateLimit-Limit": str(self.rate.requests),
            "X-RateLimit-Remaining": str(max(0, self.rate.requests - self._count)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at(now))),
        }

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset_at(now) - now))


@dataclass
class Faults:
    """What the sandbox should get wrong. See :meth:`BrazeSandbox.set_faults`."""

    status: int | None = None
    count: int = 0  # requests left to answer with ``status``; negative = until cleared
    endpoint: str = TRACK  # path the status/latency faults apply to; "*" = every API path
    latency_ms: float = 0.0
    poison_ids: frozenset[str] = frozenset()
    poison_mode: str = "400"  # "400": whole request 400; "error": per-item error in a 201

    def applies_to(self, path: str) -> bool:
        return self.endpoint in ("*", path)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "count": self.count, "endpoint": self.endpoint,
            "latency_ms": self.latency_ms, "poison_ids": sorted(self.poison_ids),
            "poison_mode": self.poison_mode,
        }


@dataclass
class Profile:
    braze_id: str
    external_id: str | None = None
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (alias_name, alias_label)
    native_line_id: str | None = None
    subscription_groups: dict[str, str] = field(default_factory=dict)
    custom_attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    purchases: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # {"seq", "group", "state"}

    def to_json(self) -> dict[str, Any]:
        return {
            "braze_id": self.braze_id,
            "external_id": self.external_id,
            "aliases": [{"alias_name": n, "alias_label": lbl} for n, lbl in self.aliases],
            "native_line_id": self.native_line_id,
            "subscription_groups": dict(self.subscription_groups),
            "custom_attributes": json.loads(json.dumps(self.custom_attributes)),
            "custom_attribute_types": {k: attribute_type(v) for k, v in self.custom_attributes.items()},
            "events": [dict(e) for e in self.events],
            "purchases": [dict(p) for p in self.purchases],
            "history": [dict(h) for h in self.history],
        }


def attribute_type(value: Any) -> str:
    """The data type Braze gives a custom attribute value: boolean, number, time, string, array or object."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "time" if _TIME_RE.match(value) else "string"
    return "array" if isinstance(value, list) else "object"


class ItemError(Exception):
    """An object in a request is invalid: reported in the response's ``errors``."""


class _Store:
    """Profiles and their identifier indexes. Callers hold the sandbox lock."""

    def __init__(self) -> None:
        self.by_braze: dict[str, Profile] = {}
        self.by_external: dict[str, Profile] = {}
        self.by_alias: dict[tuple[str, str], Profile] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.by_braze)

    def all(self) -> list[Profile]:
        return list(self.by_braze.values())

    def save(self, p: Profile) -> None:
        """Keep what was changed on ``p``: nothing to do, these profiles are the stored objects."""

    def find(self, ident: Identifier) -> Profile | None:
        kind, value = ident
        if kind == "external_id":
            return self.by_external.get(value)
        if kind == "user_alias":
            return self.by_alias.get(value)
        if kind == "braze_id":
            return self.by_braze.get(value)
        for p in self.by_braze.values():  # email / phone: rare, a scan is fine
            if p.custom_attributes.get(kind) == value:
                return p
        return None

    def create(self, ident: Identifier) -> Profile:
        p = Profile(braze_id=f"sandbox{next(self._ids):012d}")
        self.by_braze[p.braze_id] = p
        kind, value = ident
        if kind == "external_id":
            self.set_external_id(p, value)
        elif kind == "user_alias":
            self.add_alias(p, value)
        elif kind in ("email", "phone"):
            p.custom_attributes[kind] = value
        return p

    def set_external_id(self, p: Profile, external_id: str) -> None:
        p.external_id = external_id
        self.by_external[external_id] = p

    def add_alias(self, p: Profile, alias: tuple[str, str]) -> None:
        if alias not in p.aliases:
            p.aliases.append(alias)
        self.by_alias[alias] = p

    def delete(self, p: Profile) -> None:
        self.by_braze.pop(p.braze_id, None)
        if p.external_id is not None and self.by_external.get(p.external_id) is p:
            del self.by_external[p.external_id]
        for alias in p.aliases:
            if self.by_alias.get(alias) is p:
                del self.by_alias[alias]

    def merge(self, src: Profile, dst: Profile) -> None:
        """Fill ``dst``'s gaps from ``src`` (dst's values win), move aliases, delete src."""
        self.delete(src)
        for alias in src.aliases:
            self.add_alias(dst, alias)
        if dst.native_line_id is None:
            dst.native_line_id = src.native_line_id
        for gid, state in src.subscription_groups.items():
            dst.subscription_groups.setdefault(gid, state)
        for key, value in src.custom_attributes.items():
            dst.custom_attributes.setdefault(key, value)
        dst.events = sorted(dst.events + src.events, key=lambda e: e.get("time", ""))
        dst.purchases = dst.purchases + src.purchases
        dst.history = sorted(dst.history + src.history, key=lambda h: h["seq"])


def _parse_identifier(obj: dict[str, Any]) -> Identifier:
    primary = [k for k in ("external_id", "user_alias", "braze_id") if k in obj]
    if len(primary) > 1:
        raise ItemError(f"more than one identifier ({', '.join(primary)})")
    kind = primary[0] if primary else next((k for k in ("email", "phone") if k in obj), None)
    if kind is None:
        raise ItemError("missing identifier: external_id, user_alias, braze_id, email or phone")
    value = obj[kind]
    if kind == "user_alias":
        if not isinstance(value, dict):
            raise ItemError("user_alias must be an object with alias_name and alias_label")
        name, label = value.get("alias_name"), value.get("alias_label")
        if not (isinstance(name, str) and name and isinstance(label, str) and label):
            raise ItemError("user_alias needs non-empty string alias_name and alias_label")
        return ("user_alias", (name, label))
    if not isinstance(value, str) or not value:
        raise ItemError(f"{kind} must be a non-empty string")
    return (kind, value)


def _update_existing_only(obj: dict[str, Any], kind: str) -> bool:
    flag = obj.get("_update_existing_only")
    if flag is None:
        return kind != "external_id"
    if not isinstance(flag, bool):
        raise ItemError("_update_existing_only must be a boolean")
    return flag


def _parse_subscription_groups(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise ItemError("subscription_groups must be an array")
    out = []
    for g in value:
        if not isinstance(g, dict):
            raise ItemError("subscription_groups items must be objects")
        gid, state = g.get("subscription_group_id"), g.get("subscription_state")
        if not isinstance(gid, str) or not gid:
            raise ItemError("subscription_group_id must be a non-empty string")
        if state not in SUBSCRIPTION_STATES:
            raise ItemError("subscription_state must be 'subscribed' or 'unsubscribed'")
        out.append((gid, state))
    return out


def _check_time(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ItemError(f"{what} time must be an ISO 8601 string")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ItemError(f"{what} time is not ISO 8601") from None
    return value


def _object_ids(obj: Any) -> set[str]:
    """The ids in an object that poison_ids can match."""
    if not isinstance(obj, dict):
        return set()
    ids = {obj.get("external_id"), obj.get("native_line_id"), obj.get("braze_id")}
    alias = obj.get("user_alias")
    if isinstance(alias, dict):
        ids.add(alias.get("alias_name"))
    return {i for i in ids if isinstance(i, str)}


def _item_ids(item: Any) -> set[str]:
    """The ids of an identify item (external_id, user_alias) or a merge item (both identifiers)."""
    if not isinstance(item, dict):
        return set()
    return _object_ids(item) | _object_ids(item.get("identifier_to_merge")) | _object_ids(item.get("identifier_to_keep"))


def _error(message: str, array: str, index: int) -> dict[str, Any]:
    return {"type": message, "input_array": array, "index": index}
