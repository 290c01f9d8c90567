"""gunicorn's own log lines in linesync's format (``logger_class`` in ingress/gunicorn_conf.py).

With ``LINESYNC_LOG_FORMAT=json`` gunicorn's error log (start, workers booting
and exiting, signals) and its access log (when enabled, e.g.
``GUNICORN_CMD_ARGS="--access-logfile -"``) are JSON lines made by
shared/logs.py's formatter, like every other line of the process, with the
process id as ``pid``. An access line carries ``remote``, ``method``, ``path``,
``status``, ``bytes``, ``duration_ms`` and ``user_agent`` as fields (no query
string, no headers: they may carry secrets). With ``text`` gunicorn's own
formats are kept.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging

from shared.logs import JsonFormatter


def log_format() -> str:
    """LINESYNC_LOG_FORMAT as the settings read it (environment, then .env); text if they do not parse."""
    from shared.config import load_settings
    from shared.errors import ConfigError

    try:
        return load_settings().log_format
    except ConfigError:  # the process stops on it elsewhere, with its own line
        return "text"


class _Fields(logging.Filter):
    """Adds the process id (and keeps a record's own fields) for the JSON formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = {"pid": record.process, **getattr(record, "fields", {})}
        return True


class Logger(glogging.Logger):
    """gunicorn's logger, writing JSON lines when LINESYNC_LOG_FORMAT=json."""

    json = False

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.json = log_format() == "json"
        if not self.json:
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(JsonFormatter())
                    if not any(isinstance(f, _Fields) for f in handler.filters):
                        handler.addFilter(_Fields())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.json:
            super().access(resp, req, environ, request_time)
            return
        if not self.cfg.accesslog and not (self.cfg.syslog and not self.cfg.disable_redirect_access_to_syslog):
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        fields = {
            "remote": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
        }
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"],
                             extra={"fields": fields})
