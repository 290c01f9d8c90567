"""``linesync ingress``: serve the webhook front door with gunicorn.

Two binds: ``--bind`` (public: ``/line/events``, ``/healthz``, ``/readyz``) and
``--admin-bind`` (``/metrics``, ``/v1/…``, ``/status``; keep it private). Redis's
settings are checked before gunicorn starts (ingress/startup.py).
"""

from __future__ import annotations

import logging
import types
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.errors import ConfigError
from shared.logs import setup_logging

from ingress import gunicorn_conf, startup
from ingress.surface import DEFAULT_ADMIN_BIND, AdminBind

log = logging.getLogger("ingress")


class IngressServer(BaseApplication):
    """Gunicorn running ``create_app(settings, admin_bind=…)`` in each worker, configured
    from ``ingress/gunicorn_conf.py``, then ``GUNICORN_CMD_ARGS``, then ``overrides``."""

    def __init__(self, settings: Settings, overrides: dict[str, Any], *, admin_bind: str = DEFAULT_ADMIN_BIND):
        self.settings = settings
        self.overrides = overrides
        self.admin_bind = admin_bind
        super().__init__()

    def load_config(self) -> None:
        for name, value in _settings_of(gunicorn_conf).items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)
        env_args = self.cfg.get_cmd_args_from_env()
        if env_args:
            parsed = self.cfg.parser().parse_args(env_args)
            for name, value in vars(parsed).items():
                if value is not None and name != "args" and name in self.cfg.settings:
                    self.cfg.set(name, value)
        for name, value in self.overrides.items():
            self.cfg.set(name, value)

    def load(self):
        # Runs in each worker after the fork: Redis pools and metric files are per process.
        from ingress import create_app

        return create_app(self.settings, admin_bind=self.admin_bind)

    def reload(self) -> None:
        """``SIGHUP``: re-read the settings, the channels file with them, for the workers gunicorn
        starts now; the old ones finish their requests first, so none is dropped. A file that no
        longer parses is logged and the channels in use are kept."""
        super().reload()
        try:
            self.settings = load_settings().require(*ROLE_REQUIREMENTS["ingress"])
            log.info("SIGHUP: serving channels %s", ", ".join(c.name for c in self.settings.channels()))
        except ConfigError as e:
            log.error("SIGHUP: %s; keeping the channels in use", e)
        self.callable = None  # the next workers build their app from these settings


def _settings_of(module: types.ModuleType) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


def _admin_bind(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None  # LINESYNC_ADMIN_BIND, or its default
    try:
        AdminBind.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if value == ctx.params.get("bind"):
        raise click.BadParameter("must differ from --bind: the admin surface is never on the public one")
    return value


@click.command("ingress")
@click.option("--bind", default=gunicorn_conf.DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              is_eager=True, help="Public address: POST /line/events, /healthz, /readyz (nothing else).")
@click.option("--admin-bind", default=None, metavar="HOST:PORT",
              callback=_admin_bind,
              help="Admin address: /metrics, /v1/... (LINESYNC_ADMIN_TOKEN), /status, health. Keep it private "
                   f"(unix:PATH works too). [default: LINESYNC_ADMIN_BIND, else {DEFAULT_ADMIN_BIND}]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help=f"Worker processes (default: usable CPUs, lowered to a container CPU quota, at least 2; "
                   f"here {gunicorn_conf.workers}).")
def ingress(bind: str, admin_bind: str | None, workers: int | None) -> None:
    """Serve LINE's webhook on --bind and the admin surface on --admin-bind (gunicorn)."""
    settings = load_settings().require(*ROLE_REQUIREMENTS["ingress"])
    if admin_bind is None:  # the flag wins over LINESYNC_ADMIN_BIND
        admin_bind = settings.admin_bind
        if admin_bind == bind:
            raise ConfigError("LINESYNC_ADMIN_BIND", "must differ from --bind: the admin surface is never on "
                                                     "the public one")
    setup_logging(settings.log_format, settings.log_level)
    startup.check_redis(settings.redis_url, settings.redis_durability)  # a ConfigError: one line, exit 2 (linesync.cli)
    log.info("webhooks on %s (POST /line/events), admin surface on %s (/metrics, /v1/..., /status)",
             bind, admin_bind)
    overrides: dict[str, Any] = {"bind": [bind, admin_bind]}
    if workers is not None:
        overrides["workers"] = workers
    IngressServer(settings, overrides, admin_bind=admin_bind).run()
