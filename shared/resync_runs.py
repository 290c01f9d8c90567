"""The resync run store: the run HASH and the history of finished runs, built and read here.

``{P}:resync:run`` holds the current (or last) run as a HASH of strings:
:class:`Run` types it. ``{P}:resync:history`` is a LIST of JSON summaries of
finished runs, newest first (:func:`history_entry` builds one, the readers
below parse them). workers/resync.py runs the pass and writes these through its
fenced scripts; `linesync status`, the status page, doctor and the metrics
only read them, through this module, so none of them needs the workers.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared.keys import Keys

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
# Phases of a running run: paging through LINE, marking missing users, finishing.
PAGES, MISSING, FINISH = "pages", "missing", "finish"
# Finished runs kept in {P}:resync:history.
HISTORY_MAX = 100
# History entries read per LRANGE while looking for the last completed run.
HISTORY_CHUNK = 10


@dataclass
class Run:
    """The run HASH, typed. Every field is stored as a string."""

    id: str
    status: str = RUNNING
    reason: str = ""
    started_ms: int = 0
    finished_ms: int = 0
    pages: int = 0
    followers: int = 0
    next: str = ""
    error: str = ""
    mark_missing: bool = False
    updated_ms: int = 0
    phase: str = PAGES
    restarts: int = 0
    attempts: int = 0          # consecutive failures of the current page
    retry_at_ms: int = 0
    subscribed: int = 0        # users whose state changed to subscribed (approximate after a crash)
    unsubscribed: int = 0      # users marked unsubscribed by the mark-missing phase
    missing_cursor: str = "0"
    force_mark_missing: bool = False  # the operator overrode the mark-missing share check for this run
    missing_counted: bool = False      # the mark-missing phase has counted the absent users and may mark them
    missing_found: int = 0             # known subscribed users absent from the complete pass (the count)
    seq: int = 0               # bumped by every checkpoint: the compare-and-set token

    _INTS = ("started_ms", "finished_ms", "pages", "followers", "updated_ms", "restarts", "attempts",
             "retry_at_ms", "subscribed", "unsubscribed", "missing_found", "seq")
    _BOOLS = ("mark_missing", "force_mark_missing", "missing_counted")

    @classmethod
    def from_hash(cls, h: dict[bytes | str, bytes | str]) -> Run | None:
        d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in h.items()}
        if not d.get("id"):
            return None
        out: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in d:
                continue
            v = d[name]
            if name in cls._INTS:
                out[name] = int(v or 0)
            elif name in cls._BOOLS:
                out[name] = v == "1"
            else:
                out[name] = v
        return cls(**out)

    def to_hash(self) -> dict[str, str]:
        return {k: ("1" if v else "0") if isinstance(v, bool) else str(v) for k, v in asdict(self).items()}

    def public(self, now: int | None = None) -> dict[str, Any]:
        """What `linesync status` and `linesync resync --wait` show."""
        d = asdict(self)
        del d["seq"], d["missing_cursor"], d["missing_counted"]
        d["next"] = bool(self.next)  # the token itself is of no use to an operator
        end = self.finished_ms or now or self.updated_ms
        d["duration_s"] = round(max(0, end - self.started_ms) / 1000, 1) if self.started_ms else None
        secs = max(0.001, (end - self.started_ms) / 1000) if self.started_ms else None
        d["rate_per_s"] = round(self.followers / secs, 1) if secs else None
        return d


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def load(r: redis.Redis, keys: Keys) -> Run | None:
    return Run.from_hash(r.hgetall(keys.resync_run))


def new_run_id(now: int) -> str:
    return f"{now:013d}-{uuid.uuid4().hex[:8]}"


def history_entry(run: Run) -> str:
    """The JSON summary a finished run leaves in the history."""
    return json.dumps(run.public(), separators=(",", ":"))


def _entry(raw) -> dict | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def resync_status(r: redis.Redis, keys: Keys, *, now: int | None = None) -> dict[str, Any]:
    """``{"current": the running run or None, "last": the last finished run or None}`` (JSON-safe)."""
    run = load(r, keys)
    current = run.public(now) if run is not None and run.status == RUNNING else None
    raw = r.lindex(keys.resync_history, 0)
    return {"current": current, "last": _entry(raw) if raw is not None else None}


def last_completed(r: redis.Redis, keys: Keys) -> dict | None:
    """The newest completed run in the history (usually the first entry), or None."""
    for start in range(0, HISTORY_MAX, HISTORY_CHUNK):
        rows = r.lrange(keys.resync_history, start, start + HISTORY_CHUNK - 1)
        for raw in rows:
            entry = _entry(raw)
            if entry is not None and entry.get("status") == COMPLETED:
                return entry
        if len(rows) < HISTORY_CHUNK:
            break
    return None
