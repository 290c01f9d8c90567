"""Redis connections: the one place that turns ``REDIS_URL`` into clients, for every process.

``REDIS_URL`` is ``redis://``, ``rediss://`` (TLS), ``unix://``, or
``sentinel://[:password@]host:port[,host:port…]/<master-name>[/<db>]``: the
sentinels are asked where the primary of ``<master-name>`` is, and asked again
after a failover (a connection that finds its server demoted to a replica is
dropped and reopened at the new primary). The password is the primary's (and
its replicas'); the sentinels are reached without one. Besides the clients of
linesync's own code, this module gives Celery's broker (kombu's sentinel
transport with ``master_name``) and redbeat their settings for the same URL.
One pool per process and URL; errors converted at the boundary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import quote, unquote

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

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


SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel(url: str | None) -> bool:
    return bool(url) and url.strip().lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``sentinel://[user:password@]h1:p1[,h2:p2…]/<master-name>[/<db>]``; ValueError saying what is wrong."""
    rest = url.strip()[len(SENTINEL_SCHEME) + 3:]
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, colon, pw = auth.partition(":")
        username, password = (unquote(user) or None), (unquote(pw) if colon else None)
    sentinels = []
    for part in netloc.split(","):
        host, colon, port = part.strip().partition(":")
        port = port if colon else str(DEFAULT_SENTINEL_PORT)
        if not host or not port.isdigit():
            raise ValueError("a sentinel:// URL lists sentinels as host:port[,host:port…]")
        sentinels.append((host, int(port)))
    segments = [p for p in path.split("?")[0].split("/") if p]
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("a sentinel:// URL ends with /<master-name>[/<db>], e.g. sentinel://s1:26379,s2:26379/mymaster/0")
    return SentinelTarget(tuple(sentinels), unquote(segments[0]), int(segments[1]) if len(segments) == 2 else 0,
                          username, password)


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the sentinels' current primary, however it is used.

    redis-py asks the sentinels where the primary is only in ``connect()``, which
    its pool calls when it hands a connection out. A connection held for good
    (the ingress pins one per thread and writes on it directly) that was dropped
    — e.g. on ``READONLY`` from a demoted primary — is reopened by the next
    ``send_packed_command`` at its *last* address, the old primary, for ever.
    Here it asks the sentinels first, as ``connect()`` does.
    """

    def send_packed_command(self, command, check_health=True):
        if self._sock is None:
            self.connect()
        return super().send_packed_command(command, check_health)


def connection_pool(url: str, *, socket_timeout: float, socket_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                    max_connections: int | None = None, **kwargs) -> redis.ConnectionPool:
    """A connection pool for ``url``: a plain one, or one that follows the sentinels' primary."""
    opts = dict(socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, **kwargs)
    if max_connections is not None:
        opts["max_connections"] = max_connections
    if not is_sentinel(url):
        return redis.ConnectionPool.from_url(url, **opts)
    t = parse_sentinel_url(url)
    manager = Sentinel(list(t.sentinels), socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout)
    return SentinelConnectionPool(t.master, manager, db=t.db, username=t.username, password=t.password,
                                  connection_class=PrimaryConnection, **opts)


def connect(url: str, *, socket_timeout: float, **kwargs) -> redis.Redis:
    """A new client of its own for ``url`` (``client`` shares one per process)."""
    return redis.Redis(connection_pool=connection_pool(url, socket_timeout=socket_timeout, **kwargs))


def client(url: str, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT) -> redis.Redis:
    """A shared client for ``url`` (bytes responses, pooled, health-checked)."""
    key = (url, socket_timeout)
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = connect(url, socket_timeout=socket_timeout, health_check_interval=30,
                                        retry_on_timeout=False)
        return c


def celery_broker(url: str | None) -> dict:
    """Celery settings for ``url`` as its broker (kombu transports that ride out a full Redis)."""
    if not is_sentinel(url):
        return {"broker_url": url, "broker_transport": "workers.broker:Transport"}
    t = parse_sentinel_url(url)
    auth = ""
    if t.password is not None or t.username:
        auth = f"{quote(t.username or '', safe='')}:{quote(t.password or '', safe='')}@"
    return {
        # kombu: one sentinel:// URL per sentinel, ';'-separated, each with the primary's password and db.
        "broker_url": ";".join(f"sentinel://{auth}{host}:{port}/{t.db}" for host, port in t.sentinels),
        "broker_transport": "workers.broker:SentinelTransport",
        "broker_transport_options": {"master_name": t.master},
    }


def redbeat_settings(url: str | None, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT) -> dict:
    """redbeat's settings for ``url`` (its own client; sentinels through its ``redis-sentinel`` mode)."""
    if not is_sentinel(url):
        return {"redbeat_redis_url": url}
    t = parse_sentinel_url(url)
    options = {"sentinels": [list(s) for s in t.sentinels], "service_name": t.master, "db": t.db,
               "password": t.password, "socket_timeout": socket_timeout}
    if t.username:
        options["username"] = t.username
    return {"redbeat_redis_url": "redis-sentinel://", "redbeat_redis_options": options}


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
