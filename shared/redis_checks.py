"""Redis as linesync needs it, judged from one ``INFO`` answer. Pure (``INFO`` works where
``CONFIG GET`` is disabled, as on most managed Redis services)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.check import FAIL, OK, Check, failed, passed, warning
from shared.errors import ConfigError
from shared.redis_conn import REDIS_DOWN

# XAUTOCLAIM (taking over a dead consumer's stream entries) and GETDEL arrived in Redis 6.2.
MIN_VERSION = (6, 2)
# Above this share of maxmemory, the ingress is close to answering 503 to LINE.
MEMORY_FAIL_RATIO = 0.90

CONFIG_HINT = "in redis.conf (or your provider's parameter group) so it survives a restart"


def version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def version(info: Mapping[str, Any]) -> Check:
    v = str(info.get("redis_version", "?"))
    if version_tuple(v) < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        return failed("redis.version", f"Redis {v}: linesync needs {need} or later (XAUTOCLAIM, GETDEL)",
                      f"upgrade Redis to {need} or later (7.x recommended)")
    return passed("redis.version", f"Redis {v}")


def eviction(info: Mapping[str, Any]) -> Check:
    policy = str(info.get("maxmemory_policy", "?"))
    if policy != "noeviction":
        return failed(
            "redis.eviction",
            f"maxmemory-policy is {policy}: Redis may evict queued webhooks, user state and dedupe marks, "
            "silently dropping follow/unfollow updates",
            f"CONFIG SET maxmemory-policy noeviction, and set it {CONFIG_HINT}",
        )
    return passed("redis.eviction", "maxmemory-policy noeviction")


def aof(info: Mapping[str, Any]) -> Check:
    if str(info.get("aof_enabled", "0")) != "1":
        return warning(
            "redis.aof",
            "appendonly is off: a Redis restart loses webhooks acknowledged to LINE since the last snapshot",
            f"CONFIG SET appendonly yes (with appendfsync everysec), and set it {CONFIG_HINT}; or, on a managed "
            "Redis that keeps data by replication instead of AOF, LINESYNC_REDIS_DURABILITY=replicas",
        )
    status = str(info.get("aof_last_write_status", "ok"))
    if status != "ok":
        return failed("redis.aof", f"appendonly is on but AOF writes are failing (aof_last_write_status {status})",
                      "check the Redis host's disk (full? read-only?) and the Redis log")
    return passed("redis.aof", "appendonly yes")


def replicas(info: Mapping[str, Any]) -> Check:
    """LINESYNC_REDIS_DURABILITY=replicas: a webhook is kept by a replica (the ingress WAITs for one), not AOF."""
    n = int(info.get("connected_slaves", 0) or 0)
    aof_on = str(info.get("aof_enabled", "0")) == "1"
    if n < 1:
        return failed(
            "redis.replicas",
            "LINESYNC_REDIS_DURABILITY=replicas but no replica is connected: the ingress answers 503 to every "
            "webhook (no replica confirms it) until one is",
            "add a replica (managed Redis: a replica node / Multi-AZ; self-hosted: replicaof, with Sentinel), "
            "or set LINESYNC_REDIS_DURABILITY=aof with appendonly yes",
        )
    risk = ("" if aof_on else "; without AOF, losing the primary and its replicas together (a region, "
            "a restart of all nodes) loses what they held")
    return passed("redis.replicas", f"{n} replica(s) connected: a webhook is answered 200 once one has it{risk}")


def cluster(info: Mapping[str, Any]) -> Check:
    if str(info.get("cluster_enabled", "0")) == "1":
        return failed(
            "redis.cluster",
            "a Redis Cluster endpoint (cluster mode enabled): Celery's broker and redbeat need one keyspace "
            "on one node, which Cluster does not give them",
            "use a cluster-mode-disabled Redis (managed: \"cluster mode disabled\", its primary endpoint; "
            "self-hosted: a primary with replicas, and Sentinel for failover)",
        )
    return passed("redis.cluster", "not a cluster (one keyspace)")


def durability(info: Mapping[str, Any], mode: str = "aof") -> Check:
    """How acknowledged webhooks survive the primary: its AOF (``aof``), or a replica (``replicas``)."""
    return replicas(info) if mode == "replicas" else aof(info)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} kB"


def memory(info: Mapping[str, Any]) -> Check:
    used = int(info.get("used_memory", 0) or 0)
    limit = int(info.get("maxmemory", 0) or 0)
    if limit <= 0:
        return warning(
            "redis.memory",
            f"no maxmemory set (using {_mb(used)}): noeviction only takes effect at maxmemory, so Redis "
            "would grow until the host runs out of memory",
            "set maxmemory (e.g. 75% of the host's RAM) with maxmemory-policy noeviction: a full Redis "
            "then refuses writes, the ingress answers 503 and LINE redelivers",
        )
    ratio = used / limit
    detail = f"{_mb(used)} of {_mb(limit)} maxmemory ({ratio:.0%})"
    if ratio > MEMORY_FAIL_RATIO:
        return failed(
            "redis.memory", f"{detail}: close to full; at 100% the ingress answers 503",
            "raise maxmemory, or see what grows with `linesync status` (webhook backlog, outbox, dead letters)",
        )
    return passed("redis.memory", detail)


def check_info(info: Mapping[str, Any], durability_mode: str = "aof") -> list[Check]:
    return [version(info), eviction(info), cluster(info), durability(info, durability_mode), memory(info)]


def at_start(r, role: str, log, durability_mode: str = "aof") -> None:
    """The check every long-running process makes when it starts (ingress, worker, beat).

    An evicting ``maxmemory-policy``, a Redis older than 6.2 or a Redis Cluster
    endpoint stops the process with one line naming it (ConfigError): eviction
    silently drops queued updates; Celery's broker and redbeat cannot work on a
    cluster. AOF off (``LINESYNC_REDIS_DURABILITY=aof``) or no replica connected
    (``replicas``), no ``maxmemory`` or a nearly full Redis are logged as
    warnings. Only ``INFO`` is used (``CONFIG`` is refused by most managed Redis).
    A Redis that does not answer yet is not a reason to refuse to start (every
    process rides out an outage): the check is logged as skipped.
    """
    try:
        info = r.info()
    except REDIS_DOWN as e:
        log.warning("%s: could not check Redis's settings at start (%s); carrying on", role, type(e).__name__)
        return
    for check in (version(info), eviction(info), cluster(info)):
        if check.status == FAIL:
            raise ConfigError("REDIS_URL", f"points at a Redis linesync must not use: {check.detail}; fix: {check.fix}")
    for check in (durability(info, durability_mode), memory(info)):
        if check.status != OK:
            log.warning("%s: %s (fix: %s)", role, check.detail, check.fix)
