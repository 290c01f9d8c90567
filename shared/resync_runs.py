"""The resync run store: a run's life from start to finish, and its history.

``{P}:resync:run`` holds the current (or last) run as a HASH of strings:
:class:`Run` types it. ``{P}:resync:history`` is a LIST of JSON summaries of
finished runs, newest first (:func:`history_entry` builds one, the readers
below parse them).

A run's life, all written here:

1. :func:`start` creates it, one at a time per channel: ``{P}:resync:lock``
   holds the run id while the run has status ``running``.
2. Chunks of the pass (workers/resync.py) take the lease ``{P}:resync:lease``
   and move the run forward only through :func:`checkpoint`, a compare-and-set
   on the run's ``seq`` fenced by that lease (shared/lua/resync_checkpoint.lua),
   which also grows or deletes the run's seen set ``{P}:resync:seen:<runId>``.
   A chunk's worker that dies stops renewing the lease; ``kick`` asks
   :func:`needs_wake` and queues a new chunk, which resumes from the checkpoint
   (:func:`mark_queued` / :func:`clear_queued` keep it to one queued chunk).
3. :func:`finish` ends it once (shared/lua/resync_finish.lua): status, history
   entry, lock, seen set and lease; :func:`cancel` is the operator's finish.

`linesync status`, the status page, doctor and the metrics only read, through
:func:`load`, :func:`resync_status` and :func:`last_completed`, so none of
them needs the workers.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared.keys import Keys
from shared.scripts import script

log = logging.getLogger(__name__)

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
# Phases of a running run: paging through LINE, marking missing users, finishing.
PAGES, MISSING, FINISH = "pages", "missing", "finish"
# Finished runs kept in {P}:resync:history.
HISTORY_MAX = 100
# History entries read per LRANGE while looking for the last completed run.
HISTORY_CHUNK = 10
# A queued wake-up for the run is assumed lost after this (s).
QUEUED_TTL = 30
# The seen set of an abandoned run disappears after this (ms); a live run refreshes it every page.
SEEN_TTL_MS = 3 * 24 * 3600 * 1000


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


# ---------------------------------------------------------------------------- writes


class Lost(Exception):
    """The caller no longer owns the run (lease lapsed, run finished, cancelled or replaced): nothing was written."""


def field_text(v: Any) -> str:
    """A run field as stored: booleans as 1/0, the rest as text."""
    return ("1" if v else "0") if isinstance(v, bool) else str(v)


def start(r: redis.Redis, keys: Keys, *, reason: str, now_ms: int, mark_missing: bool,
          run_id: str | None = None, force_mark_missing: bool = False) -> tuple[Run, bool]:
    """Create a run unless one is running. Returns (the running run, whether it was created now)."""
    with r.pipeline(transaction=True) as p:
        while True:
            try:
                p.watch(keys.resync_lock, keys.resync_run)
                lock = p.get(keys.resync_lock)
                cur = Run.from_hash(p.hgetall(keys.resync_run))
                if lock is not None and cur is not None and cur.status == RUNNING and cur.id == _s(lock):
                    return cur, False
                run = Run(id=run_id or new_run_id(now_ms), reason=reason, started_ms=now_ms, updated_ms=now_ms,
                          mark_missing=mark_missing, force_mark_missing=force_mark_missing and mark_missing)
                p.multi()
                p.set(keys.resync_lock, run.id)
                p.delete(keys.resync_run, keys.resync_lease)
                p.hset(keys.resync_run, mapping=run.to_hash())
                p.execute()
                log.info("resync %s started (%s%s%s)", run.id, reason, ", mark-missing" if mark_missing else "",
                         " (forced: share check off)" if run.force_mark_missing else "")
                return run, True
            except redis.WatchError:
                continue


def checkpoint(r, keys: Keys, run: Run, *, token: str, lease_ms: int, seq: int, fields: dict[str, Any],
               seen: Sequence[str] = (), clear_seen: bool = False) -> Any:
    """Move ``run`` from ``seq`` to ``seq + 1`` with ``fields``, if ``token`` still holds the lease.

    ``seen`` ids are added to the run's seen set, or the set is deleted
    (``clear_seen``). ``r`` may be a :class:`shared.resp.Queued` (the
    checkpoint then commits with the caller's transaction). Returns the
    script's 1 (written) or 0 (the run is no longer the caller's).
    """
    args: list[Any] = [run.id, token, lease_ms, seq, SEEN_TTL_MS, -1 if clear_seen else len(seen), *seen]
    for k, v in fields.items():
        args += [k, field_text(v)]
    return script(r, "resync_checkpoint")(keys=[keys.resync_run, keys.resync_lease, keys.resync_seen(run.id)],
                                          args=args)


def finish(r: redis.Redis, keys: Keys, run: Run, *, token: str, status: str, error: str, now: int) -> bool:
    """End ``run`` (if still running and, unless ``token`` is '', under that lease). True if it ended now."""
    fields = {"status": status, "error": error, "finished_ms": now, "updated_ms": now, "retry_at_ms": 0,
              "subscribed": run.subscribed, "unsubscribed": run.unsubscribed, "missing_found": run.missing_found}
    args: list[Any] = [run.id, token, HISTORY_MAX, history_entry(Run(**{**asdict(run), **fields}))]
    for k, v in fields.items():
        args += [k, field_text(v)]
    ok = script(r, "resync_finish")(keys=[keys.resync_run, keys.resync_lease, keys.resync_lock,
                                          keys.resync_history, keys.resync_seen(run.id)], args=args)
    if ok:
        run.status, run.error, run.finished_ms, run.updated_ms = status, error, now, now
    return bool(ok)


def cancel(r: redis.Redis, keys: Keys, *, now_ms: int, reason: str = "cancelled by operator") -> bool:
    """End the running run as failed (not fenced by the lease: the chunk notices at its next checkpoint)."""
    run = load(r, keys)
    if run is None or run.status != RUNNING:
        return False
    return finish(r, keys, run, token="", status=FAILED, error=reason, now=now_ms)


def needs_wake(r: redis.Redis, keys: Keys) -> str | None:
    """The id of a running run that no chunk is processing and none is queued for; marks it queued."""
    run_id, status = r.hmget(keys.resync_run, "id", "status")
    if status is None or _s(status) != RUNNING or r.exists(keys.resync_lease):
        return None
    if r.set(keys.resync_queued, "1", nx=True, ex=QUEUED_TTL):
        return _s(run_id)
    return None


def mark_queued(r: redis.Redis, keys: Keys) -> None:
    r.set(keys.resync_queued, "1", ex=QUEUED_TTL)


def clear_queued(r: redis.Redis, keys: Keys) -> None:
    r.delete(keys.resync_queued)


def claim_first_start(r: redis.Redis, keys: Keys) -> bool:
    """True exactly once per deployment (SET NX), and only if no run ever happened."""
    if r.exists(keys.resync_first):
        return False
    if not r.set(keys.resync_first, "1", nx=True):
        return False
    return not (r.exists(keys.resync_run) or r.llen(keys.resync_history))
