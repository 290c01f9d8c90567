"""Celery tasks of the follower resync (logic in workers/resync.py).

- ``linesync.resync.start(reason, mark_missing=None, run_id=None, force_mark_missing=False)``: beat's
  schedule, the first-start run and ``linesync resync`` send this. Creates a
  run unless one is running, then queues the first chunk. Every call is
  counted in ``{P}:stats`` field ``resync_start_calls``.
- ``linesync.resync.chunk(run_id)``: processes the running run for ~20 s
  under the lease, then queues its successor. Losing or duplicating one of
  these messages is harmless: the lease admits one chunk at a time and
  :func:`wake` (called by ``kick`` every 5 s) queues a chunk for a running run
  that nobody holds.

With several channels (workers/lanes.py) both take ``channel``: the run, its lease and its
LINE token are that channel's. Without it, the worker's only channel.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_shutting_down

from shared.clock import now_ms
from shared.logs import bound
from workers import resync
from workers.line_api import LineClient
from workers.runtime import Runtime


def _rt(rt: Runtime, channel: str | None) -> Runtime:
    """The runtime of ``channel`` (workers/lanes.py); None: the worker's only channel."""
    from workers.lanes import lane
    return lane(rt, channel)


def _channel_kw(channel: str | None) -> dict:
    return {"channel": channel} if channel else {}


def _chunk_opts(channel: str | None) -> dict:
    """apply_async's options: a channel's chunk carries its name; the only channel's, nothing new."""
    return {"kwargs": {"channel": channel}} if channel else {}

log = logging.getLogger(__name__)

START_CALLS = "resync_start_calls"

_stopping = threading.Event()


def make_resync(rt: Runtime) -> resync.Resync:
    s = rt.settings
    line = LineClient(s.line_api_base_url, s.line_channel_access_token) if s.line_channel_access_token else None
    return resync.Resync(rt.r, rt.keys, line, rt.clock, dedupe_ttl=s.dedupe_ttl_seconds,
                         line_unavailable="LINE_CHANNEL_ACCESS_TOKEN is not set on the workers",
                         mark_missing_min_share=s.resync_mark_missing_min_share)


@shared_task(name="linesync.resync.start", bind=True)
def start(self, reason: str = "manual", mark_missing: bool | None = None, run_id: str | None = None,
          force_mark_missing: bool = False, channel: str | None = None) -> dict:
    rt = _rt(self.app.runtime, channel)
    rt.r.hincrby(rt.keys.stats, START_CALLS, 1)
    mark = rt.settings.resync_mark_missing if mark_missing is None else bool(mark_missing)
    run, created = resync.start(rt.r, rt.keys, reason=reason, now_ms=now_ms(rt.clock), mark_missing=mark,
                                run_id=run_id, force_mark_missing=bool(force_mark_missing))
    if created:
        resync.mark_queued(rt.r, rt.keys)
        self.app.tasks[chunk.name].apply_async((run.id,), **_chunk_opts(channel))  # through this app's broker
    else:
        log.info("resync requested (%s) while run %s is running: nothing to do", reason, run.id)
    return {"run_id": run.id, "created": created}


@shared_task(name="linesync.resync.chunk", bind=True)
def chunk(self, run_id: str = "", channel: str | None = None) -> str:
    rt = _rt(self.app.runtime, channel)
    resync.clear_queued(rt.r, rt.keys)
    with bound(resync=run_id, task_id=self.request.id or ""):
        outcome = make_resync(rt).run_chunk(stop=_stopping.is_set)
    if outcome in ("more", "lost") and not _stopping.is_set():
        resync.mark_queued(rt.r, rt.keys)
        self.apply_async((run_id,), **_chunk_opts(channel))
    return outcome


def wake(rt: Runtime, channel: str | None = None) -> list[str]:
    """Called by ``kick``: resume a run whose chunk died; queue the first-start run once. Returns actions."""
    done = []
    run_id = resync.needs_wake(rt.r, rt.keys)
    if run_id:
        log.info("resync %s has no live chunk: resuming it from its checkpoint", run_id)
        chunk.apply_async((run_id,), **_chunk_opts(channel))
        done.append(f"resume:{run_id}")
    s = rt.settings
    # Without a token the first-start run would only fail; it happens once the token is set.
    if s.resync_on_start and s.line_channel_access_token and resync.claim_first_start(rt.r, rt.keys):
        log.info("first start: queueing the initial follower resync")
        start.apply_async(kwargs={"reason": "first-start", **_channel_kw(channel)})
        done.append("first-start")
    return done


@worker_shutting_down.connect
def _on_shutdown(**_):
    _stopping.set()
