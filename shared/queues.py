"""Celery queue names (shared so that the CLI and compose.yaml agree with the workers)."""

CONSUME = "linesync.consume"   # pump loops reading the webhook stream
DELIVER = "linesync.deliver"   # pump loops sending batches to Braze
CONTROL = "linesync.control"   # resync, links, identify/merge, housekeeping

ALL = (CONSUME, DELIVER, CONTROL)
