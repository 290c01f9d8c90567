"""Celery workers: `celery -A workers worker` finds ``app`` here."""

from workers.celery_app import make_app

app = make_app()

__all__ = ["app"]
