"""Gunicorn settings for the ingress (``linesync ingress`` loads them; so does
``gunicorn -c python:ingress.gunicorn_conf "ingress:create_app()"``).

Why these values:

- Two binds: the public one (``DEFAULT_BIND``: ``/line/events``, ``/healthz``,
  ``/readyz``) and the admin one (``DEFAULT_ADMIN_BIND``: ``/metrics``, ``/v1/…``,
  ``/status``); see ingress/surface.py. ``linesync ingress --bind/--admin-bind``
  replace them.
- ``gthread`` workers, 8 threads each, in linesync's variant
  (ingress/buffered_worker.py): a request is short CPU work plus one Redis
  round trip; threads overlap those waits (and keep the worker answering while
  a stalled Redis holds a few threads for up to its 1 s timeout). No thread
  ever waits for a client: a request is served once it is all in, and until
  then the connection waits in the worker's poller, so slow or stalled clients
  (like idle keep-alive connections) hold no thread; a request must be in
  within 10 s of its first byte (408 after that).
- ``workers`` = usable CPUs (at least 2): the work is CPU-bound Python
  (HMAC, JSON, schema), which threads alone cannot spread over cores. Usable
  means the CPUs the process may run on, lowered by a container's CPU quota
  (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``; ingress/cpu_limit.py): a
  1-CPU pod on a 32-core node starts 2, not 32. ``linesync ingress --workers``
  (or gunicorn's ``-w``, e.g. in ``GUNICORN_CMD_ARGS``) overrides it.
- ``timeout`` 30 s is worker *liveness* (a wedged process is replaced), not the
  request budget. Requests answer well inside LINE's 2 s because the Redis
  client gives up after 1 s (0.5 s to connect) and the ingress then says 503.
- ``keepalive`` 65 s: longer than common load balancers' idle timeout (60 s),
  so the balancer, not gunicorn, closes idle connections (no 502 race).
- ``graceful_timeout`` 20 s: on SIGTERM in-flight requests finish, new ones go
  to other replicas.
- ``max_requests`` + jitter: recycle workers now and then, staggered.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is created (a
  temporary directory, removed at exit) when unset, stale files are cleared at
  start, and dead workers are marked so ``/metrics`` sums every worker.
- ``on_starting`` (the master, before forking) checks Redis's settings
  (ingress/startup.py): an evicting policy or Redis < 6.2 stops gunicorn with
  one line; ``linesync ingress`` has checked already and it does nothing then.
- ``logger_class``: gunicorn's own lines are JSON too under
  ``LINESYNC_LOG_FORMAT=json`` (ingress/gunicorn_logging.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile

from ingress.cpu_limit import usable_cpus
from ingress.surface import DEFAULT_ADMIN_BIND

DEFAULT_BIND = "0.0.0.0:8080"


bind = [DEFAULT_BIND, DEFAULT_ADMIN_BIND]
worker_class = "ingress.buffered_worker.BufferedThreadWorker"
workers = max(2, usable_cpus())
threads = 8
worker_connections = 1000  # open connections per worker (idle keep-alive ones, slow clients still sending)
timeout = 30
graceful_timeout = 20
keepalive = 65
max_requests = 50_000
max_requests_jitter = 5_000
# Heartbeat files in memory: a slow disk must not make the arbiter kill workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
proc_name = "linesync-ingress"
# gunicorn >= 25 opens a control socket at one fixed path per user; several ingress
# processes on a host (or tests) would fight over it.
control_socket_disable = True
accesslog = None  # per-request lines cost throughput; set GUNICORN_CMD_ARGS="--access-logfile -" to enable
errorlog = "-"
loglevel = "info"
logger_class = "ingress.gunicorn_logging.Logger"

# The directory this master created for Prometheus, removed when it exits.
_own_metrics_dir: str | None = None


def on_starting(server) -> None:
    global _own_metrics_dir
    _check_redis(server)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = _own_metrics_dir = tempfile.mkdtemp(prefix="linesync-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    else:
        os.makedirs(path, exist_ok=True)
        # prometheus_client: wipe the directory between runs, or old counts add up.
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    if "prometheus_client" in sys.modules:
        server.log.warning(
            "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: "
            "/metrics will only show one worker's counts"
        )


def _check_redis(server) -> None:
    """Redis's settings, once, before any worker starts (ingress/startup.py)."""
    from ingress import startup
    from shared.config import ROLE_REQUIREMENTS, load_settings
    from shared.errors import ConfigError

    try:
        settings = getattr(server.app, "settings", None) or load_settings().require(*ROLE_REQUIREMENTS["ingress"])
        startup.check_redis(settings.redis_url)
    except ConfigError as e:
        print(f"linesync: configuration error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def post_fork(server, worker) -> None:
    # Redis connections must never be shared across processes.
    from shared.redis_conn import reset_clients

    reset_clients()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
