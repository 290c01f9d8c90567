"""A Redis lease: at most one holder at a time, lost automatically if the holder dies."""

from __future__ import annotations

import uuid

import redis

from shared.scripts import script


class Lease:
    def __init__(self, r: redis.Redis, key: str, ttl_ms: int, token: str | None = None):
        self.r, self.key, self.ttl_ms = r, key, ttl_ms
        self.token = token or uuid.uuid4().hex

    def _call(self, op: str) -> bool:
        return bool(script(self.r, "lease")(keys=[self.key], args=[op, self.token, self.ttl_ms]))

    def take(self) -> bool:
        return self._call("take")

    def renew(self) -> bool:
        return self._call("renew")

    def release(self) -> bool:
        return self._call("release")

    def holder(self) -> str | None:
        v = self.r.get(self.key)
        return v.decode() if v else None
