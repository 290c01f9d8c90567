"""Deliver outbox batches to Braze /users/track.

One call to :meth:`Deliverer.step` claims one batch (shared/outbox.py), waits
for the cluster-wide limiter, sends it and settles it:

1. 2xx: done; items Braze names in ``errors`` are dead-lettered with its reason.
   ``X-RateLimit-Remaining: 0`` also pauses every worker until the reset.
2. 429: every worker pauses until ``X-RateLimit-Reset``; the batch waits too
   (no attempt counted).
3. 5xx, timeout, connection error: the shared breaker opens for a jittered,
   growing time; the batch waits for it with one more attempt counted, and is
   dead-lettered after ``BRAZE_RETRY_MAX_ATTEMPTS``.
4. 400 for the whole request: the batch is split in halves until the bad
   items are alone; those are dead-lettered, the rest delivered.
5. 401/403/404: delivery pauses for every worker (``BRAZE_AUTH_RETRY_SECONDS``,
   then one probe), logged at CRITICAL; nothing is dropped.

A batch's users stay "in flight" until it is settled, so a newer state of the
same user can never be sent before an older one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from shared import outbox, payload
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.keys import Keys
from shared.limiter import Limiter
from shared.outbox import Batch, Item, Wait
from workers import braze as b

log = logging.getLogger(__name__)

# Longest wait for a rate-limit token while holding a batch; past it the batch is put back.
MAX_TOKEN_WAIT_MS = 2_000
# When the outbox is empty, look again after this long (s).
IDLE_SLEEP = 0.05
# While a partial batch waits for the flush delay, look again at least this often (s):
# under load the outbox fills a whole batch long before the delay is up.
POLL_SLEEP = 0.05


@dataclass
class _Part:
    items: list[Item]
    events: list[dict]

    def size(self) -> int:
        return len(self.items) + len(self.events)

    def halves(self) -> tuple[_Part, _Part]:
        units = [("i", x) for x in self.items] + [("e", x) for x in self.events]
        mid = len(units) // 2
        def part(us):
            return _Part([x for k, x in us if k == "i"], [x for k, x in us if k == "e"])
        return part(units[:mid]), part(units[mid:])


class Deliverer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, client: b.BrazeClient,
                 limiter: Limiter, clock: Clock):
        self.r, self.keys, self.settings = r, keys, settings
        self.client, self.limiter, self.clock = client, limiter, clock
        self.group = settings.braze_subscription_group_id or ""

    # -- one unit of work -------------------------------------------------
    def step(self) -> float:
        """Claim and settle one batch. Returns how long to sleep before the next step (s)."""
        got = outbox.claim(
            self.r, self.keys, now_ms=now_ms(self.clock), max_objects=self.settings.braze_track_batch_size,
            flush_delay_ms=self.settings.flush_delay_ms,
        )
        if isinstance(got, Wait):
            return min(got.ms / 1000, POLL_SLEEP) if got.why == "delay" else IDLE_SLEEP
        return self.deliver(got)

    def deliver(self, batch: Batch) -> float:
        delivered = 0
        dead: list[tuple[str, str, dict]] = []
        stack_root = _Part(batch.items, batch.events)
        stack = [stack_root]
        while stack:
            part = stack.pop()
            attributes, owners_a = self._attributes(part.items)
            if not attributes and not part.events:
                continue
            if part is not stack_root:
                outbox.reschedule(self.r, self.keys, batch, due_ms=now_ms(self.clock) + outbox.DEFAULT_LEASE_MS)
            decision = self._token(batch)
            if decision is None:
                return IDLE_SLEEP
            outcome = self.client.track(attributes, part.events, now=self.clock.now())
            if isinstance(outcome, b.Delivered):
                if decision.probe:
                    self.limiter.succeeded()
                if outcome.pause_until:
                    self.limiter.pause(int(outcome.pause_until * 1000), "X-RateLimit-Remaining: 0", "rate_limit")
                named = {(arr, i): reason for arr, i, reason in outcome.errors}
                for i, obj in enumerate(attributes):
                    if ("attributes", i) in named:
                        dead.append(("track", named["attributes", i], {"user": owners_a[i], "object": obj}))
                for i, ev in enumerate(part.events):
                    if ("events", i) in named:
                        dead.append(("track_event", named["events", i], {"object": ev}))
                delivered += len(attributes) + len(part.events) - len(named)
            elif isinstance(outcome, b.BadRequest):
                if decision.probe:
                    self.limiter.succeeded()
                if part.size() == 1:
                    dead.extend(self._letters(part, outcome.reason))
                else:
                    stack.extend(reversed(part.halves()))
            elif isinstance(outcome, b.RateLimited):
                until = int(outcome.reset_at * 1000)
                self.limiter.pause(until, "HTTP 429 from Braze", "rate_limit")
                outbox.reschedule(self.r, self.keys, batch, due_ms=until)
                return IDLE_SLEEP
            elif isinstance(outcome, b.AuthFailure):
                return self._auth_failure(batch, outcome.reason)
            else:
                return self._retry_later(batch, outcome.reason)
        outbox.finish(self.r, self.keys, batch, delivered=delivered, dead=dead)
        self._count(delivered)
        return 0.0

    # -- helpers ----------------------------------------------------------
    def _attributes(self, items: list[Item]) -> tuple[list[dict], list[str]]:
        objs, owners = [], []
        for it in items:
            for o in payload.objects_for(it.user, it.state, it.external_ids, self.group):
                objs.append(o)
                owners.append(it.user)
        return objs, owners

    def _letters(self, part: _Part, reason: str) -> list[tuple[str, str, dict]]:
        out = []
        for it in part.items:
            out.append(("track", reason, {"user": it.user, "objects": self._attributes([it])[0]}))
        for ev in part.events:
            out.append(("track_event", reason, {"object": ev}))
        return out

    def _token(self, batch: Batch):
        """Wait for the shared limiter; None when the batch was put back to wait longer."""
        waited = 0
        while True:
            d = self.limiter.acquire(now_ms(self.clock))
            if d.allowed:
                return d
            if d.why == "rate" or d.why == "probing":
                if waited + d.wait_ms <= MAX_TOKEN_WAIT_MS:
                    self.clock.sleep(d.wait_ms / 1000)
                    waited += d.wait_ms
                    continue
            outbox.reschedule(self.r, self.keys, batch, due_ms=now_ms(self.clock) + d.wait_ms)
            return None

    def _retry_later(self, batch: Batch, reason: str) -> float:
        now = now_ms(self.clock)
        streak, open_until = self.limiter.failed(now)
        batch.attempts += 1
        batch.last_error = reason
        if batch.attempts >= self.settings.braze_retry_max_attempts:
            log.error("batch %s dead-lettered after %d attempts: %s", batch.id, batch.attempts, reason)
            letters = self._letters(_Part(batch.items, batch.events), f"gave up after {batch.attempts} attempts: {reason}")
            outbox.finish(self.r, self.keys, batch, delivered=0, dead=letters)
            return 0.0
        log.warning("batch %s attempt %d failed (%s); shared backoff #%d until +%.1fs",
                    batch.id, batch.attempts, reason, streak, (open_until - now) / 1000)
        outbox.reschedule(self.r, self.keys, batch, due_ms=max(open_until, now), save=True)
        return IDLE_SLEEP

    def _auth_failure(self, batch: Batch, reason: str) -> float:
        until = now_ms(self.clock) + int(self.settings.braze_auth_retry_seconds * 1000)
        log.critical("Braze rejected our credentials or endpoint (%s): delivery paused for every worker; "
                     "check BRAZE_REST_ENDPOINT and BRAZE_API_KEY. Nothing is dropped.", reason)
        self.limiter.pause(until, reason, "auth")
        outbox.reschedule(self.r, self.keys, batch, due_ms=until)
        return IDLE_SLEEP

    def _count(self, delivered: int) -> None:
        if delivered <= 0:
            return
        bucket = int(self.clock.now()) // 10 * 10
        key = self.keys.throughput(bucket)
        p = self.r.pipeline(transaction=False)
        p.incrby(key, delivered)
        p.expire(key, 180)
        p.execute()
