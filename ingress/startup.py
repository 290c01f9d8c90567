"""The check an ingress process makes once at start: is REDIS_URL a Redis linesync may use?

``shared.redis_checks.at_start``: an evicting ``maxmemory-policy`` or a Redis
older than 6.2 raises ConfigError (the process stops with one line naming it);
AOF off, no ``maxmemory`` or a nearly full Redis are logged as warnings; a
Redis that does not answer yet is logged and the process carries on.

Where it runs (once per process tree, whichever comes first):

- ``linesync ingress``: in the command, before gunicorn starts (a ConfigError
  is then the command's one line, exit 2);
- ``gunicorn -c python:ingress.gunicorn_conf …``: in the master's
  ``on_starting`` hook, before any worker is forked;
- plain ``gunicorn "ingress:create_app()"`` (or any WSGI server): in
  ``create_app()`` when it loads the settings itself, i.e. once in each worker
  process, since no hook of ours runs in a master.

A worker forked from a master that checked inherits that it did, so it does
not ask again.
"""

from __future__ import annotations

import logging

import redis

from shared import redis_checks
from shared.redis_conn import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT, connect

log = logging.getLogger(__name__)

_checked = False


def check_redis(redis_url: str, durability: str = "aof") -> None:
    """``redis_checks.at_start`` for the ingress, once per process (see the module docstring)."""
    global _checked
    if _checked:
        return
    r = connect(redis_url, socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                             socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT)
    try:
        redis_checks.at_start(r, "ingress", log, durability)
    except redis.RedisError as e:  # e.g. INFO refused by an ACL: no reason to stay down
        log.warning("ingress: could not check Redis's settings at start (%s); carrying on", type(e).__name__)
    finally:
        r.close()
    _checked = True
