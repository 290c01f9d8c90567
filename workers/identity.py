"""Send queued /users/identify and /users/merge items to Braze.

Each step takes up to 50 items from the identity stream (first this
consumer's own unsettled ones: earlier failures and waiting items, renewed so
that no other worker takes them over while this one waits), then new ones),
keeps those whose LINE user has no state still on its way to Braze (an
identify must not overtake the call that creates the anonymous profile),
groups them by kind, and sends each group under the identify limiter:

1. 2xx: items Braze names in ``errors`` are dead-lettered; the rest are done,
   and the link index records external_id ↔ LINE user (which also sends the
   linked profile its current state).
2. 429 / 401 / 403 / 404: every worker pauses (as for /users/track); the items
   stay unacknowledged and are sent again.
3. 5xx / timeout: the shared breaker opens; each item's attempt count grows and
   it is dead-lettered after ``BRAZE_RETRY_MAX_ATTEMPTS``.
4. 400 for the whole request: each item is sent alone to find the bad ones.

Sending under the limiter and what an answer means for every worker is
workers/sending.py, shared with /users/track. Each worker process runs one
identity loop with its own stream consumer, ``<worker>/identity``
(workers/stream_consumer.py): a dead worker's items are taken over by the
others, items idle ``LINESYNC_CONSUME_CLAIM_IDLE_MS`` in a stuck loop too, and an
item taken over more than ``LINESYNC_CONSUME_MAX_DELIVERIES`` times is
dead-lettered.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import redis

from shared import identity, links, outbox
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.keys import Keys
from workers import braze as b
from workers.sending import Sender
from workers.stream_consumer import StreamConsumer

log = logging.getLogger(__name__)

IDLE_SLEEP = 0.05
# While every queued item waits for its user's profile to reach Braze, look again this often (s).
DEFER_SLEEP = 0.2
# While every worker must wait (pause, breaker), look again at least this often (s).
GATE_POLL = 1.0


class IdentityDeliverer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, client: b.BrazeClient,
                 sender: Sender, clock: Clock, *, consumer: str,
                 is_alive: Callable[[str], bool] = lambda worker: True):
        """``consumer``: this loop's name in the stream group, ``<worker>/identity``."""
        self.r, self.keys, self.settings = r, keys, settings
        self.client, self.sender, self.clock = client, sender, clock
        self.stream = StreamConsumer(r, keys, keys.identity, consumer, clock=clock, is_alive=is_alive,
                                     claim_idle_ms=settings.consume_claim_idle_ms,
                                     max_deliveries=settings.consume_max_deliveries, letter=_letter,
                                     on_settle=self._forget_attempts)

    def step(self, block_ms: int = 1000) -> float:
        if self.stream.recover_due():
            self.stream.recover()  # claimed items are ours now: read below with our own
        # Ours from earlier steps (failed, or waiting for their user), renewed even while we wait.
        entries = self.stream.own(identity.MAX_ITEMS)
        gate = self.sender.gate()
        if gate.wait_ms:
            return min(gate.wait_ms / 1000, GATE_POLL)
        if len(entries) < identity.MAX_ITEMS:
            entries += self.stream.read_new(identity.MAX_ITEMS - len(entries), 0 if entries else block_ms)
        ready = self._ready(entries)
        if not ready:
            return DEFER_SLEEP if entries else 0.0
        groups: dict[str, list] = defaultdict(list)
        for eid, f in ready:
            groups[f.get(b"kind", b"").decode()].append((eid, f))
        for kind, group in groups.items():
            if kind not in (identity.IDENTIFY, identity.MERGE):
                self._dead(group, f"unknown kind {kind!r}")
                continue
            pause = self._send(kind, group)
            if pause:
                return pause
        return 0.0

    def _ready(self, entries: list) -> list:
        """Entries whose LINE user has no state waiting to reach Braze.

        Braze ignores an identify or merge naming an alias it has not seen yet, so
        one must not overtake the /users/track call that creates the user's
        anonymous profile: it waits until the user is neither dirty nor in flight.
        """
        if not entries:
            return []
        waiting = outbox.pending(self.r, self.keys, [_s(f.get(b"line_user_id", b"")) for _, f in entries])
        return [e for e, w in zip(entries, waiting) if not w]

    def _send(self, kind: str, group: list) -> float:
        """Send one group under the shared policy; returns how long to sleep (0: go on)."""
        ours = self.stream.renew()  # a long step (one by one after a 400): send only what is still ours
        group = [g for g in group if g[0] in ours]
        if not group:
            return 0.0
        items = [identity.item_for(kind, _s(f[b"external_id"]), _s(f[b"line_user_id"])) for _, f in group]
        outcome = self.sender.send(
            lambda: self.client.post(identity.path(kind), identity.payload(kind, items), now=self.clock.now()))
        if isinstance(outcome, b.Delivered):
            bad = {i: reason for _, i, reason in outcome.errors}
            self._dead([g for i, g in enumerate(group) if i in bad], "; ".join(sorted(set(bad.values()))) or "")
            self._done([g for i, g in enumerate(group) if i not in bad])
            return 0.0
        if isinstance(outcome, b.BadRequest):
            if len(group) == 1:
                self._dead(group, outcome.reason)
                return 0.0
            for g in group:  # find the bad ones one by one
                pause = self._send(kind, [g])
                if pause:
                    return pause
            return 0.0
        if isinstance(outcome, b.Retryable):
            p = self.r.pipeline(transaction=False)
            for eid, _ in group:
                p.hincrby(self.keys.identity_attempts, eid, 1)
            attempts = p.execute()
            spent = [g for g, n in zip(group, attempts) if n >= self.settings.braze_retry_max_attempts]
            self._dead(spent, f"gave up after {self.settings.braze_retry_max_attempts} attempts: {outcome.reason}")
        # 429, auth failure, held by the limiter, or a failure: the items stay pending, sent again later.
        return IDLE_SLEEP

    def _done(self, group: list) -> None:
        if not group:
            return
        now = now_ms(self.clock)
        for _, f in group:
            links.link(self.r, self.keys, _s(f[b"external_id"]), _s(f[b"line_user_id"]), now_ms=now)
        self._ack(group)

    def _dead(self, group: list, reason: str) -> None:
        if group:
            log.warning("%d identify/merge items dead-lettered: %s", len(group), reason[:200])
            self.stream.dead_letter(group, reason)

    def _ack(self, group: list) -> None:
        self.stream.ack([eid for eid, _ in group])

    def _forget_attempts(self, p, ids: list) -> None:
        """A settled item's failed attempts are forgotten with it (same transaction)."""
        p.hdel(self.keys.identity_attempts, *ids)


def _letter(entry_id, fields: dict) -> tuple[str, dict]:
    """An identify or merge item's dead letter: its fields (an unknown kind is filed as identify)."""
    kind = _s(fields.get(b"kind", b"?"))
    return (kind if kind in (identity.IDENTIFY, identity.MERGE) else identity.IDENTIFY,
            {_s(k): _s(v) for k, v in fields.items()})


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
