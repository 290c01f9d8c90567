"""The LINE webhook front door (Flask): verify, check the envelope, queue the raw body.

``create_app(settings)`` builds the app; ``gunicorn "ingress:create_app()"`` or
``linesync ingress`` serve it. All real work happens in the workers.

The app serves two surfaces (ingress/surface.py): on the public bind only
``/line/events``, ``/healthz`` and ``/readyz``; on the admin bind (``admin_bind``,
default ``127.0.0.1:9080``) every route. Flask's test client reaches the admin
routes with ``environ_base={"linesync.surface": "admin"}``.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.keys import Keys
from shared.logs import setup_logging
from shared.redis_conn import client

from ingress.memory_guard import MemoryWatermark
from ingress.state import EXTENSION, IngressState, Route, json_response
from ingress.surface import DEFAULT_ADMIN_BIND, AdminBind, SurfaceGate


def create_app(config: Settings | None = None, *, admin_bind: str = DEFAULT_ADMIN_BIND) -> Flask:
    """Build the ingress app from ``config`` (default: the environment, checked for the ingress role).

    ``admin_bind`` is the address whose requests may reach the admin routes
    (``linesync ingress --admin-bind``). Without ``config`` the settings come from
    the environment and Redis's settings are checked once for this process
    (ingress/startup.py): that is the path of plain ``gunicorn "ingress:create_app()"``,
    where no hook of ours runs in gunicorn's master.
    """
    # Imported here, not at the top: the gunicorn master imports ingress.gunicorn_conf
    # and must not load prometheus_client before PROMETHEUS_MULTIPROC_DIR is set.
    from ingress import admin, health, metrics, status_page, webhook

    if config is None:
        from ingress import startup

        config = load_settings().require(*ROLE_REQUIREMENTS["ingress"])
        setup_logging(config.log_format, config.log_level)
        startup.check_redis(config.redis_url, config.redis_durability)
    config.require(*ROLE_REQUIREMENTS["ingress"])
    default = config.channel("default")

    app = Flask(__name__)
    # Any route reading a form or JSON gets Werkzeug's limit; /line/events reads its raw
    # body itself, within the same limit, and refuses chunked bodies (ingress/webhook.py).
    app.config["MAX_CONTENT_LENGTH"] = config.ingress_max_body_bytes
    app.extensions[EXTENSION] = IngressState(
        settings=config,
        keys=Keys(config.key_prefix),
        pool=client(config.redis_url),
        secret=(default.settings.line_channel_secret or "").encode("utf-8") if default else b"",
        memory=MemoryWatermark(config.ingress_memory_high_watermark),
        routes={c.name: Route.of(c) for c in config.channels()},
    )
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(status_page.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.wsgi_app = SurfaceGate(AdminBind.parse(admin_bind), app.wsgi_app)  # type: ignore[method-assign]
    webhook.install(app)  # POST /line/events is served before Flask's request machinery (and the gate)
    return app


def _http_error(e: HTTPException):
    """404, 405 and friends as small JSON bodies, like every other answer."""
    return json_response(e.code or 500, {"error": (e.name or "error").lower()})
