"""``linesync ingress``: serve the webhook front door with gunicorn."""

from __future__ import annotations

import types
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.logs import setup_logging

from ingress import gunicorn_conf


class IngressServer(BaseApplication):
    """Gunicorn running ``create_app(settings)`` in each worker, configured from
    ``ingress/gunicorn_conf.py``, then ``GUNICORN_CMD_ARGS``, then ``overrides``."""

    def __init__(self, settings: Settings, overrides: dict[str, Any]):
        self.settings = settings
        self.overrides = overrides
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

        return create_app(self.settings)


def _settings_of(module: types.ModuleType) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


@click.command("ingress")
@click.option("--bind", default=gunicorn_conf.DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              help="Address to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help=f"Worker processes (default: usable CPUs, at least 2; here {gunicorn_conf.workers}).")
def ingress(bind: str, workers: int | None) -> None:
    """Serve POST /line/events, /healthz, /readyz and /metrics (gunicorn, gthread workers)."""
    settings = load_settings().require(*ROLE_REQUIREMENTS["ingress"])
    setup_logging(settings.log_format, settings.log_level)
    overrides: dict[str, Any] = {"bind": [bind]}
    if workers is not None:
        overrides["workers"] = workers
    IngressServer(settings, overrides).run()
