"""What a worker or beat process writes: its logging and Celery's banners, from the app's settings.

Celery sets up logging and prints its banners through classes the app names
(workers/celery_app.py ``LinesyncCelery``); these subclasses read
``LINESYNC_LOG_FORMAT`` and ``LINESYNC_LOG_LEVEL`` from the app they belong to
(``self.app.settings``), so no signal handler or module global carries them.

With ``LINESYNC_LOG_FORMAT=json`` everything the process writes is a JSON line
on stderr: Celery's start-up banners and its "Warm shutdown" line (plain text
on stdout) are left out, the shutdown said in a log line instead.
"""

from __future__ import annotations

import logging

from celery.app.log import Logging as CeleryLogging
from celery.apps.beat import Beat as CeleryBeat
from celery.apps.worker import install_worker_term_handler

from shared.logs import setup_logging
from workers.broker import Worker as BrokerWorker

log = logging.getLogger(__name__)

# Celery's per-task log lines ("Task ... received", "... succeeded in ...").
TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")
JSON = "json"


def json_mode(app) -> bool:
    return app.settings.log_format == JSON


class Logging(CeleryLogging):
    """Celery's logging set-up replaced by linesync's (shared/logs.py), at the app's format and level."""

    def setup_logging_subsystem(self, loglevel=None, logfile=None, format=None, colorize=None, hostname=None,
                                **kwargs):
        if self.already_setup:
            return True
        CeleryLogging._setup = True
        _setup(self.app.settings)
        return True  # handled: Celery adds no handler and leaves stdout alone


def _setup(settings) -> None:
    setup_logging(settings.log_format, settings.log_level)
    # Celery logs every task it receives and finishes at INFO: at INFO, say what happened
    # (batches sent, pauses, failures), not that a job ran. DEBUG shows them again.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


class Worker(BrokerWorker):
    """``celery worker`` (workers/broker.py's: no mingle, gossip, heartbeat): no banner on stdout in JSON mode."""

    def on_before_init(self, quiet=False, **kwargs):
        if json_mode(self.app):
            # Before Celery's start-up checks, whose warnings (e.g. running as root) would be plain text.
            _setup(self.app.settings)
            logging.captureWarnings(True)
        super().on_before_init(quiet=quiet or json_mode(self.app), **kwargs)

    def install_platform_tweaks(self, worker):
        super().install_platform_tweaks(worker)
        if json_mode(self.app):
            # The same warm shutdown on SIGTERM, without Celery's plain-text line on stdout.
            install_worker_term_handler(worker, verbose=False, callback=_said_warm_shutdown)


def _said_warm_shutdown(worker) -> None:
    log.info("worker: warm shutdown")


class Beat(CeleryBeat):
    """``celery beat``: no banner on stdout in JSON mode."""

    def __init__(self, *args, quiet: bool = False, **kwargs):
        super().__init__(*args, quiet=quiet, **kwargs)
        self.quiet = quiet or json_mode(self.app)
