"""Redis connections. One pool per process and URL; errors converted at the boundary."""

from __future__ import annotations

import threading

import redis

from shared.errors import StoreUnavailable

# Short timeouts: the ingress must answer LINE within 2 s even when Redis is gone.
DEFAULT_SOCKET_TIMEOUT = 1.0
DEFAULT_CONNECT_TIMEOUT = 0.5

_clients: dict[tuple[str, float], redis.Redis] = {}
_lock = threading.Lock()

# Exceptions meaning "the store is not usable right now": wait and try again. A Redis at
# maxmemory (noeviction) refusing a write belongs here: it gets room back as the workers drain
# it (their scripts are flagged allow-oom), so a process waits rather than stops or gives up.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.exceptions.OutOfMemoryError,
              OSError)


def client(url: str, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT) -> redis.Redis:
    """A shared client for ``url`` (bytes responses, pooled, health-checked)."""
    key = (url, socket_timeout)
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                health_check_interval=30,
                retry_on_timeout=False,
            )
            _clients[key] = c
        return c


def reset_clients() -> None:
    """Forget pooled clients (after fork, or in tests that restart Redis)."""
    with _lock:
        for c in _clients.values():
            c.connection_pool.disconnect()
        _clients.clear()


def ping(r: redis.Redis) -> None:
    try:
        r.ping()
    except REDIS_DOWN as e:
        raise StoreUnavailable("Redis did not answer") from e
