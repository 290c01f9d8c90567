"""What a request handler needs, built once per app by ``create_app``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Response, current_app

from shared.channels import Channel
from shared.config import Settings
from shared.keys import DEFAULT_CHANNEL, Keys

from ingress.auth_throttle import FailureLimiter
from ingress.log_summary import LogSummary
from ingress.memory_guard import MemoryWatermark

EXTENSION = "linesync"


@dataclass(frozen=True)
class Route:
    """Where ``POST /line/events/<name>`` goes: the channel's secrets and keys."""

    name: str
    keys: Keys
    secrets: tuple[tuple[str, bytes], ...] = field(repr=False)  # (current|previous, secret)

    @classmethod
    def of(cls, channel: Channel) -> Route:
        return cls(channel.name, channel.keys, channel.secrets)


@dataclass(frozen=True)
class IngressState:
    settings: Settings
    keys: Keys
    pool: redis.Redis  # shared.redis_conn.client(REDIS_URL): its pool, URL and short timeouts
    secret: bytes = field(repr=False)  # LINE_CHANNEL_SECRET, encoded once; kept out of repr (no channels file)
    memory: MemoryWatermark = field(default_factory=lambda: MemoryWatermark(0), repr=False, compare=False)  # 0: off
    admin_failures: FailureLimiter = field(default_factory=FailureLimiter, repr=False, compare=False)
    unauthorized_log: LogSummary = field(default_factory=LogSummary, repr=False, compare=False)  # 401s, summed
    _threads: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    # Channel name -> its route: every channel of the channels file, or `default` alone. Built once
    # per app; SIGHUP builds new apps in new gunicorn workers (linesync/commands/ingress.py).
    routes: dict[str, Route] = field(default_factory=dict, repr=False, compare=False)

    def route(self, name: str) -> Route | None:
        if not self.routes:  # built without channels (tests): the single channel
            return Route(DEFAULT_CHANNEL, self.keys, (("current", self.secret),)) if name == DEFAULT_CHANNEL else None
        return self.routes.get(name)

    @property
    def redis(self) -> redis.Redis:
        """This thread's client, holding one connection of ``pool`` for the thread's life.

        Borrowing from the pool on every command costs three extra syscalls
        (redis-py checks that a returned connection has no stray data), about a
        seventh of the ingress's request time. Pinning is safe: redis-py drops
        the connection on any error or timeout mid-reply, so no stale reply is
        ever read, and the next command reconnects.
        """
        client = getattr(self._threads, "client", None)
        if client is None:
            client = redis.Redis(connection_pool=self.pool.connection_pool, single_connection_client=True)
            self._threads.client = client
        return client

    @property
    def connection(self) -> redis.connection.AbstractConnection:
        """This thread's pinned connection itself (``enqueue_pinned`` writes on it)."""
        return self.redis.connection


def current() -> IngressState:
    return current_app.extensions[EXTENSION]


def json_response(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status=status, mimetype="application/json")
