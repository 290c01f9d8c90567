"""Logging set-up: plain text or JSON lines, with bound context (task id, event id).

Never log a secret, a signature or a whole webhook body at INFO: callers log
ids and counts; bodies only at DEBUG and truncated.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("linesync_log_context", default={})


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Add fields to every log record made inside the block (e.g. task_id, event_id)."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items()}})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "ctx", {}),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        s = super().format(record)
        ctx = getattr(record, "ctx", {})
        if ctx:
            s += " " + " ".join(f"{k}={v}" for k, v in ctx.items())
        return s


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs full URLs at DEBUG; keep it quiet unless asked.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def preview(body: bytes, limit: int = 200) -> str:
    """A short, safe excerpt of a body for DEBUG logs."""
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…" if len(body) > limit else "")
