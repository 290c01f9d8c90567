"""Celery tasks. Each receives plain JSON values and is safe to run twice."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import setup_logging, worker_ready, worker_shutting_down

from shared.config import load_settings
from shared.logs import bound
from shared.logs import setup_logging as _setup_logging
from workers import pumps
from workers.consume import Consumer
from workers.deliver import Deliverer
from workers.identity import IdentityDeliverer
from workers.runtime import runtime

log = logging.getLogger(__name__)

_stopping = threading.Event()


def _slots() -> dict[str, int]:
    s = runtime().settings
    return {pumps.CONSUME: s.consumers, pumps.DELIVER: s.flushers, pumps.IDENTITY: 1}


def _step_fn(kind: str, slot: int):
    rt = runtime()
    if kind == pumps.CONSUME:
        from workers.hooks import consume_hooks
        c = Consumer(rt.r, rt.keys, rt.settings, rt.clock, rt.consumer_name(slot), hooks=consume_hooks(rt))
        return c.step
    if kind == pumps.IDENTITY:
        return IdentityDeliverer(rt.r, rt.keys, rt.settings, rt.braze, rt.identify_limiter, rt.clock).step
    return Deliverer(rt.r, rt.keys, rt.settings, rt.braze, rt.track_limiter, rt.clock).step


def _pump(kind: str, slot: int, task) -> str:
    rt = runtime()
    pumps.clear_queued(rt.r, rt.keys, kind, slot)
    with bound(pump=f"{kind}-{slot}", task_id=task.request.id or ""):
        lease = pumps.Lease(rt.r, rt.keys.pump_lease(kind, slot), pumps.LEASE_MS)
        outcome = pumps.run(lease, _step_fn(kind, slot), rt.clock, stop=_stopping.is_set)
    if outcome in ("done", "lost") and not _stopping.is_set():
        pumps.mark_queued(rt.r, rt.keys, kind, slot)
        task.apply_async((slot,))
    return outcome


@shared_task(name="linesync.pump.consume", bind=True)
def pump_consume(self, slot: int) -> str:
    return _pump(pumps.CONSUME, slot, self)


@shared_task(name="linesync.pump.deliver", bind=True)
def pump_deliver(self, slot: int) -> str:
    return _pump(pumps.DELIVER, slot, self)


@shared_task(name="linesync.pump.identity", bind=True)
def pump_identity(self, slot: int) -> str:
    return _pump(pumps.IDENTITY, slot, self)


PUMP_TASKS = {pumps.CONSUME: pump_consume, pumps.DELIVER: pump_deliver, pumps.IDENTITY: pump_identity}


@shared_task(name="linesync.kick")
def kick() -> int:
    """Queue a pump for every slot without a live loop (beat runs this every few seconds)."""
    rt = runtime()
    woken = pumps.slots_to_wake(rt.r, rt.keys, _slots())
    for kind, slot in woken:
        PUMP_TASKS[kind].apply_async((slot,))
    # Resume a resync whose chunk died (lease lapsed); queue the first-start run once.
    from workers.resync_tasks import wake
    wake(rt)
    return len(woken)


@worker_ready.connect
def _on_ready(sender=None, **_):
    kick.apply_async()


@worker_shutting_down.connect
def _on_shutdown(**_):
    _stopping.set()


@setup_logging.connect
def _logging(**_):
    s = load_settings()
    _setup_logging(s.log_format, s.log_level)
