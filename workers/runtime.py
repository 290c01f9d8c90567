"""What a worker process builds once from its settings: Redis, clock, Braze client, limiters, senders.

:func:`build` is called with the Celery app's settings (workers/celery_app.py:
``app.runtime``, built on first use in each process, by the bootstep or a task),
or with a test's own; nothing here reads the environment or keeps a global.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared import identity, outbox
from shared.clock import Clock, RedisClock, now_ms
from shared.config import ROLE_REQUIREMENTS, Settings
from shared.keys import Keys
from shared.limiter import IDENTIFY, TRACK, Limiter
from shared.redis_conn import connection_pool
from workers.braze import BrazeClient
from workers.sending import Sender

# Worker Redis calls may block (XREADGROUP BLOCK 1 s), so their timeout is longer than the ingress's.
WORKER_SOCKET_TIMEOUT = 10.0
# Redis connections a worker process may need beyond its sender threads (consume, identity,
# heartbeat, task threads).
EXTRA_CONNECTIONS = 16


@dataclass
class Runtime:
    settings: Settings
    r: redis.Redis
    keys: Keys
    clock: Clock
    braze: BrazeClient
    track_limiter: Limiter
    identify_limiter: Limiter
    track_sender: Sender
    identify_sender: Sender


def build(settings: Settings, clock: Clock | None = None) -> Runtime:
    if settings.channel_table:  # several channels: one runtime per channel, hung off this one
        from workers import lanes
        return lanes.base(settings, clock, build_one)
    return build_one(settings, clock)


def build_one(settings: Settings, clock: Clock | None = None) -> Runtime:
    settings.require(*ROLE_REQUIREMENTS["worker"])
    # Every thread holds at most one connection at a time, so the pool never runs dry:
    # the plain pool (a list and a lock) is cheaper per call than the blocking one.
    pool = connection_pool(  # REDIS_URL, sentinel:// included
        settings.redis_url, max_connections=settings.delivery_concurrency + EXTRA_CONNECTIONS,
        socket_timeout=WORKER_SOCKET_TIMEOUT, socket_connect_timeout=2.0, health_check_interval=30)
    r = redis.Redis(connection_pool=pool)
    keys = Keys(settings.key_prefix)
    clock = clock or RedisClock(r)
    limits = dict(retry_base=settings.braze_retry_base_seconds, probe_max=settings.braze_probe_max_seconds,
                  pause_max=settings.braze_pause_max_seconds)
    track = Limiter(r, keys, TRACK, settings.braze_track_rate_limit, **limits)
    ident = Limiter(r, keys, IDENTIFY, settings.braze_identify_rate_limit, **limits)
    return Runtime(
        settings=settings, r=r, keys=keys, clock=clock,
        braze=BrazeClient(settings.braze_rest_endpoint, settings.braze_api_key,
                          timeout=settings.braze_timeout_seconds, pool_size=settings.delivery_concurrency + 4),
        track_limiter=track, identify_limiter=ident,
        track_sender=Sender(track, clock, auth_retry_seconds=settings.braze_auth_retry_seconds, what="/users/track",
                            on_recovered=lambda: outbox.release_retries(r, keys, now_ms=now_ms(clock))),
        identify_sender=Sender(ident, clock, auth_retry_seconds=settings.braze_auth_retry_seconds,
                               what="/users/identify and /users/merge",
                               on_recovered=lambda: identity.release_retries(r, keys)),
    )
