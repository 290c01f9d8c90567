"""Celery workers. ``celery -A workers worker`` (and ``beat``) finds ``app`` here.

``workers.app`` is built on first access, from the configuration read once
(environment over ./.env over defaults): importing a module of this package
(the resync, the LINE client, ...) neither reads the configuration nor imports
Celery.
"""

from __future__ import annotations

# What `celery -A` loads (this package's ``app``) and beat's scheduler class (workers/beat.py).
CELERY_APP = "workers"
BEAT_SCHEDULER = "workers.beat:Scheduler"


def __getattr__(name: str):
    if name == "app":
        from shared.config import load_settings
        from workers.celery_app import create_app
        app = create_app(load_settings())
        globals()["app"] = app  # built once: later lookups find it without coming here
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
