"""The follower resync pass (docs/guide.md, "Follower resync"): page through LINE's follower list, every
follower subscribed.

Collaborators are injected (Redis, a LINE client with ``followers_ids``, a
clock), so the whole pass runs in tests and benchmarks without Celery. The
run it works on is created, checkpointed and finished by
:mod:`shared.resync_runs`; the mark-missing phase is :mod:`workers.resync_missing`.

A chunk (:meth:`Resync.run_chunk`, a Celery task re-queued every ~20 s)
takes the lease ``{P}:resync:lease`` and does steps until its time is up:

1. A page step reads the page at the checkpoint's ``next`` token from a
   :class:`~workers.page_reader.PageReader` (the page after it is already on
   its way) and writes it in ONE Redis transaction (MULTI … EXEC, one round
   trip): the state changes through :func:`shared.state.apply` (newer version
   wins, so an unfollow newer than the run's start is kept; already-subscribed
   users are not re-sent), and the fenced checkpoint (``next``, ``pages+1``,
   ``followers+n``, the page's ids into the seen set with mark-missing). A
   crash before EXEC redoes the page (state writes are idempotent); after it,
   the page is done and counted once. A holder that lost its lease, or whose
   run was cancelled, can move neither the checkpoint nor the seen set; its
   page's subscribes may still land, which is harmless: they are what LINE
   just listed, versioned at the run's start, so any newer event still wins.
2. Errors: ``LineExpiredToken`` restarts the pass from the first page (bounded
   by ``max_restarts``); ``LineForbidden`` and other 4xx end the run ``failed``
   at once with LINE's reason; ``LineRetryable`` (429/5xx/network) is retried
   with :func:`shared.backoff.compute_backoff`, up to ``max_attempts`` per page.
3. After the last page: the mark-missing phase if the run asked for it
   (:mod:`workers.resync_missing`), then the finish, done at most once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis

from shared import state
from shared.backoff import compute_backoff
from shared.clock import Clock, now_ms
from shared.config import DEFAULT_MARK_MISSING_MIN_SHARE
from shared.errors import LineApiError, LineExpiredToken, LineRetryable
from shared.events import SUBSCRIBED
from shared.keys import Keys
from shared.lease import Lease
from shared.redis_conn import REDIS_DOWN
from shared.resp import Queued, Transaction, pack
from shared.resync_runs import (  # noqa: F401  (the run store; re-exported for callers of workers.resync)
    COMPLETED, FAILED, FINISH, HISTORY_MAX, MISSING, PAGES, QUEUED_TTL, RUNNING, SEEN_TTL_MS, Lost, Run, cancel,
    checkpoint, claim_first_start, clear_queued, finish, history_entry, last_completed, load, mark_queued,
    needs_wake, new_run_id, resync_status, start,
)
from workers import resync_missing
from workers.page_reader import PAGE_LIMIT, FollowerSource, PageReader

log = logging.getLogger(__name__)

# One chunk (Celery task) processes pages this long, then hands over to its successor (s).
RUN_SECONDS = 20.0
# A chunk whose worker died frees the run after this (ms); > the longest page (LINE read timeout + apply).
LEASE_MS = 15_000
# Retries of one page on 429/5xx/network errors before the run fails.
MAX_ATTEMPTS = 8
# Backoff between those retries (s): 1, 2, 4 … capped; ~2 minutes in all.
RETRY_BASE = 1.0
RETRY_MAX = 60.0
# Times a pass may start over because LINE's paging token expired.
MAX_RESTARTS = 3
# Users examined per state scan step of the mark-missing phase.
MISSING_CHUNK = 1000
# LINE's count of friends is trusted for sizing up to this (the largest accounts hold tens of millions).
MAX_EXPECTED_FOLLOWERS = 200_000_000

# Older names, kept for callers and tests.
_Lost, _Tx, _Queued = Lost, Transaction, Queued


class Resync:
    """Processes the current run in bounded chunks. One instance per chunk (or per benchmark)."""

    def __init__(self, r: redis.Redis, keys: Keys, line: FollowerSource | None, clock: Clock, *,
                 dedupe_ttl: int = 7 * 24 * 3600, page_limit: int = PAGE_LIMIT, run_seconds: float = RUN_SECONDS,
                 lease_ms: int = LEASE_MS, max_attempts: int = MAX_ATTEMPTS, retry_base: float = RETRY_BASE,
                 retry_max: float = RETRY_MAX, max_restarts: int = MAX_RESTARTS,
                 missing_chunk: int = MISSING_CHUNK, line_unavailable: str = "", prefetch: bool = True,
                 mark_missing_min_share: float = DEFAULT_MARK_MISSING_MIN_SHARE):
        self.r, self.keys, self.line, self.clock = r, keys, line, clock
        self.dedupe_ttl = dedupe_ttl
        self.page_limit = page_limit
        self.run_seconds = run_seconds
        self.lease_ms = lease_ms
        self.max_attempts = max_attempts
        self.retry_base, self.retry_max = retry_base, retry_max
        self.max_restarts = max_restarts
        self.missing_chunk = missing_chunk
        self.mark_missing_min_share = mark_missing_min_share
        # Why there is no LINE client (e.g. the token is not set): the run fails with this.
        self.line_unavailable = line_unavailable
        # Fetch page k+1 from LINE while page k is written to Redis (inside run_chunk only).
        self.prefetch = prefetch
        self._pages: PageReader | None = None
        # The state's bucket count as the last page left it (0: not known yet): pages compute their users'
        # buckets for it (shared.state.apply_page).
        self.bucket_hint = 0
        # How many followers LINE says there are (0: unknown): the state's buckets are made ahead for
        # them while nearly empty, so a first sync does not split full ones (shared.state.apply_page).
        self.expected_followers = 0

    # ------------------------------------------------------------------ the loop

    def run_chunk(self, *, stop: Callable[[], bool] = lambda: False) -> str:
        """Work on the current run for up to ``run_seconds``.

        Returns 'busy' (another chunk holds the lease), 'idle' (nothing running),
        'more' (time is up, run still running), 'completed', 'failed', 'lost'
        (the lease lapsed or the run was replaced) or 'stopped' (``stop()``).
        """
        lease = Lease(self.r, self.keys.resync_lease, self.lease_ms)
        if not lease.take():
            return "busy"
        deadline = self.clock.now() + self.run_seconds
        try:
            run = load(self.r, self.keys)
            if run is None or run.status != RUNNING:
                return "idle"
            if run.phase == PAGES and self.line is not None:
                self.expected_followers = self._friends_estimate(run)
            if self.prefetch and self.line is not None:
                self._pages = PageReader(self.line, limit=self.page_limit, prepare=lambda ids: self.pack(run, ids),
                                         ahead_while=lambda: self.clock.now() < deadline)
            while run.status == RUNNING:
                if stop():
                    return "stopped"
                now = self.clock.now()
                if now >= deadline:
                    return "more"
                wait = run.retry_at_ms / 1000 - now
                if wait > 0:
                    self.clock.sleep(min(wait, deadline - now, 1.0))
                    if not lease.renew():
                        return "lost"
                    continue
                try:
                    self.step(run, lease.token)
                except (Lost, *REDIS_DOWN):
                    raise
                except Exception as e:  # a bug or a surprise answer: retried like a 5xx, so bounded
                    log.exception("resync %s: step failed", run.id)
                    self._retry_later(run, lease.token, f"unexpected error: {type(e).__name__}: {e}")
            return run.status
        except Lost:
            return "lost"
        finally:
            if self._pages is not None:
                self._pages.close()
                self._pages = None
            try:
                lease.release()
            except REDIS_DOWN:
                pass

    def _friends_estimate(self, run: Run) -> int:
        """LINE's count of friends (0 if it has none, or fails: only storage is sized by it)."""
        try:
            estimate = self.line.friends_estimate(self.clock.now())
        except LineApiError as e:
            log.info("resync %s: no friends count from LINE (%s); storage grows as followers come", run.id, e)
            return 0
        return min(estimate or 0, MAX_EXPECTED_FOLLOWERS)

    def step(self, run: Run, token: str) -> None:
        """One unit of work: a page, a mark-missing chunk, or the finish."""
        if self.line is None:
            self.end(run, token, FAILED, self.line_unavailable or "no LINE client configured")
        elif run.phase == PAGES:
            self._page_step(run, token)
        elif run.phase == MISSING:
            resync_missing.step(self, run, token)
        else:
            self.end(run, token, COMPLETED, "")

    # ------------------------------------------------------------------ pages

    def _page_step(self, run: Run, token: str) -> None:
        try:
            ids, nxt, packed = self._fetch(run.next)
        except LineExpiredToken as e:
            self._restart(run, token, e)
        except LineRetryable as e:
            self._retry_later(run, token, str(e))
        except LineApiError as e:  # 403 (LineForbidden) and any other 4xx: LINE's reason, not retried
            log.error("resync %s failed: %s", run.id, e)
            self.end(run, token, FAILED, str(e))
        else:
            self.apply_page(run, token, ids, nxt, packed)

    def _fetch(self, start: str) -> tuple[list[str], str | None, bytes | None]:
        """The page at ``start`` with its state writes packed (by the page reader's thread when prefetched)."""
        if self._pages is not None:
            return self._pages.page(start)
        ids, nxt = self.line.followers_ids(start or None, self.page_limit)
        return ids, nxt, None

    def pack(self, run: Run, ids: Sequence[str]) -> bytes:
        """The state writes of a page: ``ids`` subscribed at the run's start, as one packed command."""
        now = now_ms(self.clock)
        tx = Transaction()
        # The bucket count after the last page applied: right for this page unless buckets split
        # before it is (the script recomputes those users' buckets).
        self.write_states(Queued(tx), run, ids, SUBSCRIBED, now, bucket_count=self.bucket_hint)
        [cmd] = tx.cmds
        return pack(*cmd)

    def apply_page(self, run: Run, token: str, ids: list[str], nxt: str | None, packed: bytes | None = None) -> int:
        """State changes, seen ids and checkpoint of one page in one transaction. Returns users changed."""
        now = now_ms(self.clock)
        phase = PAGES if nxt else (MISSING if run.mark_missing else FINISH)
        fields = {"pages": run.pages + 1, "followers": run.followers + len(ids), "next": nxt or "",
                  "phase": phase, "attempts": 0, "retry_at_ms": 0, "error": "", "updated_ms": now,
                  "subscribed": run.subscribed, "missing_cursor": "0", "missing_counted": False, "missing_found": 0}
        tx = Transaction()
        if ids:
            tx.add_packed(packed or self.pack(run, ids))
        res = self.commit(tx, run, token, fields, seen=ids if run.mark_missing else ())
        changed = int(res[0][0]) if ids else 0
        if ids:
            self.bucket_hint = state.bucket_count_after(res[0])
        run.subscribed += changed
        return changed

    def write_states(self, q: Queued, run: Run, users: Sequence[str], st: str, now: int, *,
                     bucket_count: int = 0) -> None:
        """Queue ``users`` to state ``st``, versioned at the run's start (so any newer event wins)."""
        state.apply_page(q, self.keys, users, st, timestamp=run.started_ms, now_ms=now, bucket_count=bucket_count,
                         reserve=self.expected_followers if st == SUBSCRIBED else 0)

    def _restart(self, run: Run, token: str, err: LineExpiredToken) -> None:
        if run.restarts >= self.max_restarts:
            log.error("resync %s failed: paging token expired %d times", run.id, run.restarts + 1)
            self.end(run, token, FAILED, f"LINE's paging token kept expiring ({run.restarts + 1} times): {err}")
            return
        log.warning("resync %s: paging token expired after %d pages, starting the pass over", run.id, run.pages)
        fields = {"pages": 0, "followers": 0, "next": "", "phase": PAGES, "restarts": run.restarts + 1,
                  "attempts": 0, "retry_at_ms": 0, "error": "", "updated_ms": now_ms(self.clock),
                  "missing_cursor": "0", "missing_counted": False, "missing_found": 0}
        self.commit(Transaction(), run, token, fields, clear_seen=True)

    def _retry_later(self, run: Run, token: str, error: str) -> None:
        attempts = run.attempts + 1
        if attempts >= self.max_attempts:
            log.error("resync %s failed after %d attempts: %s", run.id, attempts, error)
            self.end(run, token, FAILED, f"LINE kept failing ({attempts} attempts): {error}")
            return
        now = now_ms(self.clock)
        delay = compute_backoff(attempts, base=self.retry_base, max_backoff=self.retry_max)
        log.warning("resync %s: page %d failed (attempt %d), retrying in %.1f s: %s",
                    run.id, run.pages, attempts, delay, error)
        fields = {"attempts": attempts, "retry_at_ms": now + int(delay * 1000), "error": error, "updated_ms": now}
        self.commit(Transaction(), run, token, fields)

    # ------------------------------------------------------------------ writes

    def commit(self, tx: Transaction, run: Run, token: str, fields: dict[str, Any], *,
               seen: Sequence[str] = (), clear_seen: bool = False) -> list[Any]:
        """Add the fenced checkpoint to transaction ``tx``, run it, update ``run``. Returns the other results."""
        checkpoint(Queued(tx), self.keys, run, token=token, lease_ms=self.lease_ms, seq=run.seq, fields=fields,
                   seen=seen, clear_seen=clear_seen)
        res = tx.execute(self.r)
        if res is None:  # a watched key changed after the check: nothing was written
            raise Lost()
        *others, ok = res
        if isinstance(ok, Exception):
            raise ok
        errors = [x for x in others if isinstance(x, Exception)]
        if errors and ok:
            # A command of the transaction failed while the checkpoint moved: put it back,
            # so the page is done again rather than skipped.
            self._undo(run, token, run.seq + 1)
            raise errors[0]
        if not ok:
            raise Lost()
        if errors:
            raise errors[0]
        for k, v in fields.items():
            setattr(run, k, v)
        run.seq += 1
        return others

    def _undo(self, run: Run, token: str, seq: int) -> None:
        fields = {k: getattr(run, k) for k in ("pages", "followers", "next", "phase", "restarts", "missing_cursor",
                                                "unsubscribed", "missing_counted", "missing_found")}
        checkpoint(self.r, self.keys, run, token=token, lease_ms=self.lease_ms, seq=seq, fields=fields)
        run.seq = seq + 1

    def end(self, run: Run, token: str, status: str, error: str) -> None:
        """Finish the run now (under our lease); :class:`Lost` if it was no longer ours."""
        if not finish(self.r, self.keys, run, token=token, status=status, error=error, now=now_ms(self.clock)):
            raise Lost()
        log.info("resync %s %s: %d followers in %d pages%s", run.id, status, run.followers, run.pages,
                 f" ({error})" if error else "")
