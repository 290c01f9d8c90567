"""The LINE webhook front door (Flask): verify, check the envelope, queue the raw body.

``create_app(settings)`` builds the app; ``gunicorn "ingress:create_app()"`` or
``linesync ingress`` serve it. All real work happens in the workers.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.keys import Keys
from shared.logs import setup_logging
from shared.redis_conn import client

from ingress.state import EXTENSION, IngressState, json_response


def create_app(config: Settings | None = None) -> Flask:
    """Build the ingress app from ``config`` (default: the environment, checked for the ingress role)."""
    # Imported here, not at the top: the gunicorn master imports ingress.gunicorn_conf
    # and must not load prometheus_client before PROMETHEUS_MULTIPROC_DIR is set.
    from ingress import admin, health, metrics, webhook

    if config is None:
        config = load_settings().require(*ROLE_REQUIREMENTS["ingress"])
        setup_logging(config.log_format, config.log_level)
    config.require(*ROLE_REQUIREMENTS["ingress"])

    app = Flask(__name__)
    # Any route reading a form or JSON gets Werkzeug's limit; /line/events reads its raw
    # body itself and enforces the same limit on chunked bodies too (ingress/webhook.py).
    app.config["MAX_CONTENT_LENGTH"] = config.ingress_max_body_bytes
    app.extensions[EXTENSION] = IngressState(
        settings=config,
        keys=Keys(config.key_prefix),
        pool=client(config.redis_url),
        secret=config.line_channel_secret.encode("utf-8"),
    )
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(admin.bp)
    app.register_error_handler(HTTPException, _http_error)
    webhook.install(app)  # POST /line/events is served before Flask's request machinery
    return app


def _http_error(e: HTTPException):
    """404, 405 and friends as small JSON bodies, like every other answer."""
    return json_response(e.code or 500, {"error": (e.name or "error").lower()})
