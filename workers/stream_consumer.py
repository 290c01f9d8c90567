"""One consumer of a linesync stream (group ``workers``): the only code that reads or claims entries.

Both streams are read through :class:`StreamConsumer`: the webhook stream by the
consume loops (workers/consume.py), the identity stream by the identity loop
(workers/identity.py). A consumer is named ``<worker>/<loop>`` (workers/engine.py),
where ``<worker>`` holds the lease ``{P}:worker:<worker>`` while its process lives;
each process and loop has its own name, so no two read as one.

What it does for its loop:

1. :meth:`~StreamConsumer.read_new` reads entries nobody has had (XREADGROUP ``>``).
2. :meth:`~StreamConsumer.own` returns the entries this consumer holds and has not
   settled yet (it waits: a pause, an open breaker, a failure to retry), and renews
   them (their idle time restarts, no delivery is counted), so a live loop that is
   only waiting keeps its entries (shared/lua/own_pending.lua).
3. :meth:`~StreamConsumer.recover` (every ``RECOVER_EVERY`` s, :meth:`~StreamConsumer.recover_due`)
   takes over, for this consumer, the pending entries of consumers whose worker
   has no lease (at once: no idle time to wait out; such a consumer is removed
   from the group once it holds nothing, and a name without a worker part, from
   before workers had leases, counts as dead), then, with XAUTOCLAIM, entries idle
   longer than ``claim_idle_ms`` in any consumer (a live but stuck loop). A claimed
   entry delivered more than ``max_deliveries`` times is dead-lettered instead of
   handed back.
4. :meth:`~StreamConsumer.ack` acknowledges and deletes settled entries (the stream
   holds only what is still to do); :meth:`~StreamConsumer.dead_letter` moves entries
   to the dead-letter stream, acknowledged and deleted in the same transaction.

Entries are ``(id, fields)`` pairs as redis-py returns them (bytes). The group
is created on first use. A loop may settle entries by other means too (the
webhook state script acknowledges its bodies atomically with their effects).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import redis

from shared import dlq, stream_group
from shared.clock import Clock
from shared.keys import STREAM_GROUP, Keys
from shared.scripts import script
from workers import metrics

log = logging.getLogger(__name__)

# Look for dead consumers' and stale entries this often (s).
RECOVER_EVERY = 5.0
# Entries claimed per XCLAIM / XAUTOCLAIM call (and handed to the loop at once), by default.
CLAIM_CHUNK = 200
# Take over a dead consumer's entries only when idle at least this long (ms): when two
# live consumers take over the same dead one at once, the second finds the entries
# just claimed and leaves them.
CLAIM_MIN_IDLE_MS = 1000
# Own pending entries renewed per call at most (those past it may be taken over as stale).
RENEW_MAX = 1000

Entry = tuple  # (id, fields)
# A dead letter's kind and payload for one entry.
LetterFn = Callable[[object, dict], tuple[str, dict]]
# Commands added to the transaction that settles (acks or dead-letters) entries: (pipeline, ids).
SettleFn = Callable[[redis.client.Pipeline, list], None]


def worker_of(consumer: str) -> str:
    """The worker process a consumer belongs to ('' for names from before workers had leases)."""
    return consumer.rpartition("/")[0]


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class StreamConsumer:
    def __init__(self, r: redis.Redis, keys: Keys, stream: str, name: str, *, clock: Clock,
                 claim_idle_ms: int, max_deliveries: int, letter: LetterFn,
                 is_alive: Callable[[str], bool] = lambda worker: True,
                 on_settle: SettleFn = lambda p, ids: None, recover_every: float = RECOVER_EVERY,
                 claim_chunk: int = CLAIM_CHUNK):
        self.r, self.keys, self.stream, self.name, self.clock = r, keys, stream, name, clock
        self.claim_idle_ms, self.max_deliveries = claim_idle_ms, max_deliveries
        self.letter, self.is_alive, self.on_settle = letter, is_alive, on_settle
        self.recover_every, self.claim_chunk = recover_every, claim_chunk
        self._group_ready = False
        self._last_recover = float("-inf")

    # -- reading ------------------------------------------------------------
    def ensure_group(self) -> None:
        if not self._group_ready:
            stream_group.ensure_group(self.r, self.stream)
            self._group_ready = True

    def read_new(self, count: int, block_ms: int = 0) -> list[Entry]:
        """Up to ``count`` entries no consumer has had; blocks up to ``block_ms`` (0: not at all)."""
        self.ensure_group()
        resp = self.r.xreadgroup(STREAM_GROUP, self.name, {self.stream: ">"}, count=count,
                                 block=block_ms or None)
        return [(eid, f) for eid, f in (resp[0][1] if resp else []) if f is not None]

    def own(self, count: int) -> list[Entry]:
        """Up to ``count`` of this consumer's unsettled entries, oldest first, all of them renewed."""
        return self._own(count)[1]

    def renew(self) -> set:
        """Renew this consumer's unsettled entries; returns their ids. A loop about to act on
        entries it read a while ago (a long step) acts only on those still its own."""
        return self._own(0)[0]

    def _own(self, count: int) -> tuple[set, list[Entry]]:
        self.ensure_group()
        ids, rows = script(self.r, "own_pending")(keys=[self.stream],
                                                  args=[STREAM_GROUP, self.name, count, max(count, RENEW_MAX)])
        return set(ids), [(eid, dict(zip(flat[::2], flat[1::2]))) for eid, flat in rows]

    # -- recovery -----------------------------------------------------------
    def recover_due(self) -> bool:
        """Is it time to :meth:`recover`? (Then it counts as done: at most once per ``recover_every``.)"""
        if self.clock.now() - self._last_recover < self.recover_every:
            return False
        self._last_recover = self.clock.now()
        return True

    def recover(self, handle: Callable[[list[Entry]], None] = lambda entries: None) -> int:
        """Claim dead consumers' entries, then stale ones, for this consumer; hand the live ones to ``handle``.

        ``handle`` is called per chunk with entries that are this consumer's
        pending ones afterwards (the loop settles them, or they wait in
        :meth:`own`); entries delivered too often are dead-lettered first,
        deleted ones acknowledged. Returns how many were claimed.
        """
        self.ensure_group()
        claimed = self.take_over_dead(lambda rows: handle(self._screen(rows)))
        start = "0-0"
        while True:
            res = self.r.xautoclaim(self.stream, STREAM_GROUP, self.name, min_idle_time=self.claim_idle_ms,
                                    start_id=start, count=self.claim_chunk)
            nxt, rows = res[0], res[1]
            if rows:
                claimed += len(rows)
                handle(self._screen(rows))
            if _text(nxt) == "0-0" or not rows:
                return claimed
            start = nxt

    def dead_consumers(self) -> list[tuple[str, int]]:
        """(name, pending) of the group's consumers whose worker process is gone."""
        out = []
        for c in self.r.xinfo_consumers(self.stream, STREAM_GROUP):
            name = _text(c["name"])
            if name == self.name or self.is_alive(worker_of(name)):
                continue
            out.append((name, int(c["pending"])))
        return out

    def take_over_dead(self, handle: Callable[[list], None] = lambda rows: None) -> int:
        """Claim every pending entry of dead consumers, hand them to ``handle`` as claimed, drop those consumers."""
        moved = 0
        for name, pending in self.dead_consumers():
            while pending:
                rows = self.r.xpending_range(self.stream, STREAM_GROUP, min="-", max="+", count=self.claim_chunk,
                                             consumername=name)
                if not rows:
                    break
                ids = [row["message_id"] for row in rows]
                got = self.r.xclaim(self.stream, STREAM_GROUP, self.name, min_idle_time=CLAIM_MIN_IDLE_MS,
                                    message_ids=ids)
                moved += len(got)
                handle(got)
                if len(rows) < self.claim_chunk:
                    break
            # Only a consumer with nothing pending is removed (DELCONSUMER drops pending entries).
            if not self.r.xpending_range(self.stream, STREAM_GROUP, min="-", max="+", count=1, consumername=name):
                self.r.xgroup_delconsumer(self.stream, STREAM_GROUP, name)
        return moved

    def _screen(self, rows: list) -> list[Entry]:
        """Claimed rows minus deleted entries (acknowledged) and entries delivered too often (dead-lettered)."""
        gone = [eid for eid, f in rows if f is None]
        if gone:  # deleted from the stream while pending
            self.r.xack(self.stream, STREAM_GROUP, *gone)
        live = [(eid, f) for eid, f in rows if f is not None]
        if not live:
            return []
        ids = sorted(live, key=lambda e: _id_key(e[0]))
        pend = self.r.xpending_range(self.stream, STREAM_GROUP, min=ids[0][0], max=ids[-1][0],
                                     count=len(live) + RENEW_MAX, consumername=self.name)
        times = {_text(p["message_id"]): int(p["times_delivered"]) for p in pend}
        poison = [e for e in live if times.get(_text(e[0]), 0) > self.max_deliveries]
        for eid, f in poison:
            reason = f"delivered {times[_text(eid)]} times without success"
            log.error("%s entry %s dead-lettered: %s", self.stream, _text(eid), reason)
            self.dead_letter([(eid, f)], reason)
        return [e for e in live if times.get(_text(e[0]), 0) <= self.max_deliveries]

    # -- settling -----------------------------------------------------------
    def ack(self, ids: Sequence) -> None:
        """Acknowledge and delete settled entries, in one transaction."""
        if not ids:
            return
        p = self.r.pipeline(transaction=True)
        self._settle(p, list(ids))
        p.execute()

    def dead_letter(self, entries: Sequence[Entry], reason: str) -> None:
        """Move entries to the dead-letter stream, acknowledged and deleted, counted: one transaction."""
        if not entries:
            return
        p = self.r.pipeline(transaction=True)
        kinds = []
        for eid, fields in entries:
            kind, payload = self.letter(eid, fields)
            kinds.append(kind)
            p.xadd(self.keys.dlq, dlq.entry(kind, reason, payload))
        p.hincrby(self.keys.stats, "dead_lettered", len(entries))
        self._settle(p, [eid for eid, _ in entries])
        p.execute()
        metrics.dead_lettered(kinds)

    def _settle(self, p: redis.client.Pipeline, ids: list) -> None:
        p.xack(self.stream, STREAM_GROUP, *ids)
        p.xdel(self.stream, *ids)
        self.on_settle(p, ids)


def _id_key(eid) -> tuple[int, int]:
    ms, _, seq = _text(eid).partition("-")
    return int(ms), int(seq or 0)
