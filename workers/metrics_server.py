"""The HTTP server of a worker's or beat's metrics port: ``GET /metrics`` and ``GET /healthz``.

``/metrics`` is the process's registry in Prometheus's text format
(prometheus_client's WSGI app); ``/healthz`` answers ``200`` with the age of
the process's heartbeat while it is fresh and ``503`` otherwise
(workers/health.py), for a container's liveness probe. Anything else: 404.

The port is the operator's (``LINESYNC_WORKER_METRICS_PORT``,
``LINESYNC_BEAT_METRICS_PORT``): a taken port stops the process with one line
naming that setting, never a silent move to another port Prometheus does not
know. Several processes on one host each need their own value; 0 = off.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from shared.errors import ConfigError

log = logging.getLogger(__name__)

Health = Callable[[], "tuple[bool, dict]"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        pass  # a scrape every 15 s is not worth a log line


def make_app(registry: CollectorRegistry, health: Health):
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            fresh, body = health()
            start_response("200 OK" if fresh else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(body).encode()]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics, /healthz\n"]

    return app


class MetricsServer:
    """A running metrics port (a daemon thread)."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread):
        self._httpd, self._thread = httpd, thread
        self.port: int = httpd.server_address[1]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve(port: int, registry: CollectorRegistry, health: Health, *, setting: str,
          addr: str = "0.0.0.0") -> MetricsServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` (0 = off: None).

    Raises ConfigError naming ``setting`` when the port cannot be had.
    """
    if not port:
        return None
    try:
        httpd = make_server(addr, port, make_app(registry, health), server_class=_Server, handler_class=_Quiet)
    except OSError as e:
        why = ("is taken (another process on this host? give each its own port, or 0 = off)"
               if e.errno == errno.EADDRINUSE else f"cannot be listened on ({e.strerror or e})")
        raise ConfigError(setting, f"port {port} {why}") from None
    thread = threading.Thread(target=httpd.serve_forever, name=f"linesync-metrics-{port}", daemon=True)
    thread.start()
    log.info("metrics and health on port %d (/metrics, /healthz)", port)
    return MetricsServer(httpd, thread)
