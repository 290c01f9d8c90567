"""What a worker process builds once: settings, Redis, Braze client, limiters.

Built lazily in each process (after Celery forks its pool), never at import,
so task modules stay importable in tests.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

import redis

from shared.clock import Clock, SystemClock
from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.keys import Keys
from shared.limiter import IDENTIFY, TRACK, Limiter
from workers.braze import BrazeClient

# Worker Redis calls may block (XREADGROUP BLOCK 1 s), so their timeout is longer than the ingress's.
WORKER_SOCKET_TIMEOUT = 10.0


@dataclass
class Runtime:
    settings: Settings
    r: redis.Redis
    keys: Keys
    clock: Clock
    braze: BrazeClient
    track_limiter: Limiter
    identify_limiter: Limiter

    def consumer_name(self, slot: int) -> str:
        return f"consume-{slot}"


_runtime: Runtime | None = None
_pid: int | None = None
_lock = threading.Lock()
_settings_override: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Tests: build the runtime from these settings instead of the environment."""
    global _settings_override, _runtime
    _settings_override = settings
    _runtime = None


def build(settings: Settings, clock: Clock | None = None) -> Runtime:
    settings.require(*ROLE_REQUIREMENTS["worker"])
    r = redis.Redis.from_url(settings.redis_url, socket_timeout=WORKER_SOCKET_TIMEOUT,
                             socket_connect_timeout=2.0, health_check_interval=30)
    keys = Keys(settings.key_prefix)
    common = dict(retry_base=settings.braze_retry_base_seconds, retry_max=settings.braze_retry_max_seconds)
    return Runtime(
        settings=settings, r=r, keys=keys, clock=clock or SystemClock(),
        braze=BrazeClient(settings.braze_rest_endpoint, settings.braze_api_key,
                          timeout=settings.braze_timeout_seconds),
        track_limiter=Limiter(r, keys, TRACK, settings.braze_track_rate_limit, **common),
        identify_limiter=Limiter(r, keys, IDENTIFY, settings.braze_identify_rate_limit, **common),
    )


def runtime() -> Runtime:
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            _runtime = build(_settings_override or load_settings())
            _pid = os.getpid()
        return _runtime


def hostname() -> str:
    return socket.gethostname()
