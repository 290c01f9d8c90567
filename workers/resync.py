"""Follower resync (docs/guide.md, "Follower resync"): page through LINE's follower list and mark every follower subscribed.

Collaborators are injected (Redis, a LINE client with ``followers_ids``, a
clock), so the whole pass runs in tests and benchmarks without Celery.

A run, step by step:

1. :func:`start` creates it, one at a time per channel: ``{P}:resync:lock``
   holds the run id while ``{P}:resync:run`` (a HASH) has status ``running``.
2. :meth:`Resync.run_chunk` (a Celery task, re-queued every ~20 s like the
   pumps) takes the lease ``{P}:resync:lease`` and processes pages. A worker
   killed mid-run stops renewing it; ``kick`` (every 5 s) queues a new chunk
   once it has lapsed (:func:`needs_wake`), which resumes from the checkpoint.
3. Each page is ONE Redis transaction (MULTI … EXEC, one round trip): the
   state changes through :func:`shared.state.apply` (newer version wins, so an
   unfollow newer than the run's start is kept; already-subscribed users are
   not re-sent), then the checkpoint (``next``, ``pages+1``, ``followers+n``)
   and the page's ids added to the run's seen set (mark-missing option), both
   written by one compare-and-set script that first checks the lease. A crash
   before EXEC redoes the page (state writes are idempotent); after it, the
   page is done and counted once. A holder that lost its lease, or whose run
   was cancelled, can move neither the checkpoint nor the seen set; its
   page's subscribes may still land, which is harmless: they are what LINE
   just listed, versioned at the run's start, so any newer event still wins.
4. Errors: ``LineExpiredToken`` restarts the pass from the first page (bounded
   by ``max_restarts``); ``LineForbidden`` and other 4xx end the run ``failed``
   at once with LINE's reason; ``LineRetryable`` (429/5xx/network) is retried
   with :func:`shared.backoff.compute_backoff`, up to ``max_attempts`` per page.
5. With mark-missing, after a complete pass ``{P}:state`` is scanned (HSCAN in
   chunks + SMISMEMBER against the seen set) and every subscribed user that
   the pass did not list gets an unsubscribe versioned at the run's start, so
   any event newer than the run still wins. These writes depend on what was
   read, so the step is fenced by a WATCH (:meth:`_Tx.watch`): it first checks
   that the run is still running at its seq under this chunk's lease (and that
   the seen set exists), and EXEC writes nothing if the run, the lease or the
   seen set changed since. A cancel (which deletes the seen set) therefore
   cannot turn into unsubscribes. CAVEAT (LINE): the follower list
   only contains users who consented to it (and never blocked users), so this
   unsubscribes followers who did not consent. That is why it is off by default.
6. The finish (status, finished_ms, history entry, lock and seen set removed)
   is one script, done at most once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Protocol

import redis

from shared import state
from shared.backoff import compute_backoff
from shared.clock import Clock, now_ms
from shared.errors import LineApiError, LineExpiredToken, LineForbidden, LineRetryable
from shared.events import SUBSCRIBED, UNSUBSCRIBED, make_version
from shared.keys import Keys
from shared.lease import Lease
from shared.redis_conn import REDIS_DOWN
from shared.resync_runs import (  # noqa: F401  (the run store; re-exported for callers of workers.resync)
    COMPLETED, FAILED, FINISH, HISTORY_MAX, MISSING, PAGES, RUNNING, Run, _s, history_entry, last_completed,
    load, new_run_id, resync_status,
)

log = logging.getLogger(__name__)

# LINE's maximum page size.
PAGE_LIMIT = 1000
# One chunk (Celery task) processes pages this long, then hands over to its successor (s).
RUN_SECONDS = 20.0
# A chunk whose worker died frees the run after this (ms); > the longest page (LINE read timeout + apply).
LEASE_MS = 15_000
# A queued wake-up for the run is assumed lost after this (s).
QUEUED_TTL = 30
# Retries of one page on 429/5xx/network errors before the run fails.
MAX_ATTEMPTS = 8
# Backoff between those retries (s): 1, 2, 4 … capped; ~2 minutes in all.
RETRY_BASE = 1.0
RETRY_MAX = 60.0
# Times a pass may start over because LINE's paging token expired.
MAX_RESTARTS = 3
# Users examined per HSCAN step of the mark-missing phase.
MISSING_CHUNK = 1000
# The seen set of an abandoned run disappears after this (ms); a live run refreshes it every page.
SEEN_TTL_MS = 3 * 24 * 3600 * 1000

# Compare-and-set of the checkpoint and of the run's seen set, fenced by the lease.
# KEYS[1] {P}:resync:run            HASH   the run
# KEYS[2] {P}:resync:lease          STRING the chunk's lease token
# KEYS[3] {P}:resync:seen:<runId>   SET    ids listed by the pass (mark-missing)
# ARGV[1] run id   ARGV[2] lease token   ARGV[3] lease ms   ARGV[4] expected seq
# ARGV[5] seen-set TTL ms   ARGV[6] n: ids to add to the seen set, or -1 to delete it
# ARGV[7..6+n] those ids, then field/value pairs to HSET (seq is set to expected+1)
# Returns 1 when written, 0 when the caller no longer owns the run (nothing written).
_CHECKPOINT = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local run = redis.call('HMGET', KEYS[1], 'id', 'status', 'seq')
if run[1] ~= ARGV[1] or run[2] ~= 'running' or run[3] ~= ARGV[4] then return 0 end
local n = tonumber(ARGV[6])
if n < 0 then
  redis.call('DEL', KEYS[3])
  n = 0
elseif n > 0 then
  for i = 7, 6 + n, 1000 do
    redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 999, 6 + n)))
  end
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
end
redis.call('HSET', KEYS[1], 'seq', tostring(tonumber(ARGV[4]) + 1), unpack(ARGV, 7 + n))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
"""

# Ends a run once: status and fields, history entry, lock, seen set, lease.
# KEYS[1] {P}:resync:run  KEYS[2] {P}:resync:lease  KEYS[3] {P}:resync:lock
# KEYS[4] {P}:resync:history  KEYS[5] {P}:resync:seen:<runId>
# ARGV[1] run id  ARGV[2] lease token ('' = not fenced: operator cancel)  ARGV[3] history max
# ARGV[4] summary JSON  ARGV[5..] field/value pairs to HSET
# Returns 1 when the run ended now, 0 when it was not running (or not ours).
_FINISH = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local run = redis.call('HMGET', KEYS[1], 'id', 'status')
if run[1] ~= ARGV[1] or run[2] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('LPUSH', KEYS[4], ARGV[4])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
redis.call('DEL', KEYS[5])
if ARGV[2] ~= '' then redis.call('DEL', KEYS[2]) end
return 1
"""


class FollowerSource(Protocol):
    def followers_ids(self, start: str | None = None, limit: int = PAGE_LIMIT) -> tuple[list[str], str | None]:
        ...


class _Lost(Exception):
    """This chunk no longer owns the run (lease lapsed, run finished or replaced)."""


def start(r: redis.Redis, keys: Keys, *, reason: str, now_ms: int, mark_missing: bool,
          run_id: str | None = None) -> tuple[Run, bool]:
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
                          mark_missing=mark_missing)
                p.multi()
                p.set(keys.resync_lock, run.id)
                p.delete(keys.resync_run, keys.resync_lease)
                p.hset(keys.resync_run, mapping=run.to_hash())
                p.execute()
                log.info("resync %s started (%s%s)", run.id, reason, ", mark-missing" if mark_missing else "")
                return run, True
            except redis.WatchError:
                continue


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


def cancel(r: redis.Redis, keys: Keys, *, now_ms: int, reason: str = "cancelled by operator") -> bool:
    """End the running run as failed (not fenced by the lease: the chunk notices at its next checkpoint)."""
    run = load(r, keys)
    if run is None or run.status != RUNNING:
        return False
    return _finish_script(r, keys, run, token="", status=FAILED, error=reason, now=now_ms)


def _finish_script(r: redis.Redis, keys: Keys, run: Run, *, token: str, status: str, error: str, now: int) -> bool:
    fields = {"status": status, "error": error, "finished_ms": now, "updated_ms": now, "retry_at_ms": 0,
              "subscribed": run.subscribed, "unsubscribed": run.unsubscribed}
    args: list[Any] = [run.id, token, HISTORY_MAX, history_entry(Run(**{**asdict(run), **fields}))]
    for k, v in fields.items():
        args += [k, str(v)]
    ok = r.eval(_FINISH, 5, keys.resync_run, keys.resync_lease, keys.resync_lock, keys.resync_history,
                keys.resync_seen(run.id), *args)
    if ok:
        run.status, run.error, run.finished_ms, run.updated_ms = status, error, now, now
    return bool(ok)


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (the inner loop of every page: ~5 arguments per follower)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else (a.encode() if isinstance(a, str) else str(a).encode())
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class _Tx:
    """One MULTI … EXEC sent as a single write and read back in one round trip.

    redis-py's pipeline would do the same, but packs arguments several times
    slower; a page carries ~5,000 of them. Results are EXEC's list, with a
    ResponseError object in place of any command that failed.

    Optionally fenced: :meth:`watch` WATCHes keys on a connection that is kept
    for :meth:`execute`, whose EXEC then writes nothing if any of them was
    written, deleted or expired in between. Call :meth:`close` when done.
    """

    def __init__(self) -> None:
        self.cmds: list[tuple[Any, ...]] = []
        self._held: tuple[Any, Any] | None = None  # (pool, connection) from watch() to execute()/close()

    def add(self, *args: Any) -> None:
        self.cmds.append(args)

    def watch(self, r: redis.Redis, keys: list[str], *reads: tuple[Any, ...]) -> list[Any]:
        """WATCH ``keys``, then run ``reads``: one round trip. Returns the replies to ``reads``.

        What the replies show holds until EXEC for the watched keys: if one changes, EXEC does nothing.
        """
        if self._held is not None:
            raise RuntimeError("already watching")
        pool = r.connection_pool
        conn = pool.get_connection()
        self._held = (pool, conn)
        try:
            conn.send_packed_command([b"".join(map(_pack, [("WATCH", *keys), *reads]))])
            conn.read_response()  # +OK
            return [conn.read_response() for _ in reads]
        except BaseException:
            self.close(broken=True)
            raise

    def close(self, *, broken: bool = False) -> None:
        """Give back the connection of :meth:`watch` if :meth:`execute` did not (UNWATCH first)."""
        if self._held is None:
            return
        (pool, conn), self._held = self._held, None
        try:
            if broken:
                conn.disconnect()
            else:
                conn.send_packed_command([_pack(("UNWATCH",))])
                conn.read_response()
        except Exception:
            conn.disconnect()  # a connection in an unknown state is not given to anyone else
        finally:
            pool.release(conn)

    def execute(self, r: redis.Redis) -> list[Any] | None:
        """Run the transaction. None when a watched key changed (nothing was written)."""
        payload = b"".join([_pack(("MULTI",)), *map(_pack, self.cmds), _pack(("EXEC",))])
        if self._held is not None:
            (pool, conn), self._held = self._held, None
        else:
            pool = r.connection_pool
            conn = pool.get_connection()
        queue_errors: list[Exception] = []
        try:
            conn.send_packed_command([payload])
            conn.read_response()  # +OK
            for _ in self.cmds:
                try:
                    conn.read_response()  # +QUEUED
                except redis.ResponseError as e:  # rejected at queue time: EXEC aborts
                    queue_errors.append(e)
            try:
                res = conn.read_response()
            except redis.ResponseError:
                if queue_errors:
                    raise queue_errors[0] from None
                raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return None if res is None else list(res)


class _Queued:
    """Lets :func:`shared.state.apply` queue its script inside our MULTI instead of running it.

    ``apply`` reads its script's result at once, which a transaction cannot
    give; this stand-in for the client records the call as an ``EVAL`` in the
    transaction (EVAL, not EVALSHA: a flushed script cache cannot fail one
    command of the transaction while the others commit) and hands ``apply``
    zeros; the real counts come back from ``EXEC``.
    """

    def __init__(self, tx: _Tx):
        self._tx = tx

    def register_script(self, source: str) -> Callable[..., list[int]]:
        def call(keys: list[str], args: list[Any]) -> list[int]:
            self._tx.add("EVAL", source, len(keys), *keys, *args)
            return [0, 0, 0, 0, 0]
        return call


class Resync:
    """Processes the current run in bounded chunks. One instance per chunk (or per benchmark)."""

    def __init__(self, r: redis.Redis, keys: Keys, line: FollowerSource | None, clock: Clock, *,
                 dedupe_ttl: int = 7 * 24 * 3600, page_limit: int = PAGE_LIMIT, run_seconds: float = RUN_SECONDS,
                 lease_ms: int = LEASE_MS, max_attempts: int = MAX_ATTEMPTS, retry_base: float = RETRY_BASE,
                 retry_max: float = RETRY_MAX, max_restarts: int = MAX_RESTARTS,
                 missing_chunk: int = MISSING_CHUNK, line_unavailable: str = "", prefetch: bool = True):
        self.r, self.keys, self.line, self.clock = r, keys, line, clock
        self.dedupe_ttl = dedupe_ttl
        self.page_limit = page_limit
        self.run_seconds = run_seconds
        self.lease_ms = lease_ms
        self.max_attempts = max_attempts
        self.retry_base, self.retry_max = retry_base, retry_max
        self.max_restarts = max_restarts
        self.missing_chunk = missing_chunk
        # Why there is no LINE client (e.g. the token is not set): the run fails with this.
        self.line_unavailable = line_unavailable
        # Fetch page k+1 from LINE while page k is written to Redis (inside run_chunk only).
        self.prefetch = prefetch
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[str, Future] | None = None
        self._deadline = 0.0

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
        if self.prefetch and self.line is not None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="resync-prefetch")
        try:
            run = load(self.r, self.keys)
            if run is None or run.status != RUNNING:
                return "idle"
            deadline = self._deadline = self.clock.now() + self.run_seconds
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
                except (_Lost, *REDIS_DOWN):
                    raise
                except Exception as e:  # a bug or a surprise answer: retried like a 5xx, so bounded
                    log.exception("resync %s: step failed", run.id)
                    self._retry_later(run, lease.token, f"unexpected error: {type(e).__name__}: {e}")
            return run.status
        except _Lost:
            return "lost"
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool, self._ahead = None, None
            try:
                lease.release()
            except REDIS_DOWN:
                pass

    def step(self, run: Run, token: str) -> None:
        """One unit of work: a page, a mark-missing chunk, or the finish."""
        if self.line is None:
            self._finish(run, token, FAILED, self.line_unavailable or "no LINE client configured")
        elif run.phase == PAGES:
            self._page_step(run, token)
        elif run.phase == MISSING:
            self._missing_step(run, token)
        else:
            self._finish(run, token, COMPLETED, "")

    # ------------------------------------------------------------------ pages

    def _page_step(self, run: Run, token: str) -> None:
        try:
            ids, nxt = self._fetch(run.next)
        except LineExpiredToken as e:
            self._restart(run, token, e)
            return
        except LineForbidden as e:
            log.error("resync %s failed: %s", run.id, e)
            self._finish(run, token, FAILED, str(e))
            return
        except LineRetryable as e:
            self._retry_later(run, token, str(e))
            return
        except LineApiError as e:
            log.error("resync %s failed: %s", run.id, e)
            self._finish(run, token, FAILED, str(e))
            return
        self.apply_page(run, token, ids, nxt)

    def _fetch(self, start: str) -> tuple[list[str], str | None]:
        """The page at ``start`` ('' = first), from the prefetched answer when it is that page."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == start:
            ids, nxt = ahead[1].result()
        else:
            ids, nxt = self.line.followers_ids(start or None, self.page_limit)
        if nxt and self._pool is not None and self.clock.now() < self._deadline:
            self._ahead = (nxt, self._pool.submit(self.line.followers_ids, nxt, self.page_limit))
        return ids, nxt

    def apply_page(self, run: Run, token: str, ids: list[str], nxt: str | None) -> int:
        """State changes, seen ids and checkpoint of one page in one transaction. Returns users changed."""
        now = now_ms(self.clock)
        base = make_version(run.started_ms, now, 0, 0)[:-4]
        changes = [state.Change(u, f"{base}{i % 10000:04d}", SUBSCRIBED) for i, u in enumerate(ids)]
        done = not nxt
        phase = PAGES if not done else (MISSING if run.mark_missing else FINISH)
        fields = {"pages": run.pages + 1, "followers": run.followers + len(ids), "next": nxt or "",
                  "phase": phase, "attempts": 0, "retry_at_ms": 0, "error": "", "updated_ms": now,
                  "subscribed": run.subscribed, "missing_cursor": "0"}
        tx = _Tx()
        if changes:
            state.apply(_Queued(tx), self.keys, changes, now_ms=now, dedupe_ttl=self.dedupe_ttl)
        res = self._commit(tx, run, token, fields, seen=ids if run.mark_missing else ())
        changed = int(res[0][0]) if changes else 0
        run.subscribed += changed
        return changed

    def _restart(self, run: Run, token: str, err: LineExpiredToken) -> None:
        if run.restarts >= self.max_restarts:
            log.error("resync %s failed: paging token expired %d times", run.id, run.restarts + 1)
            self._finish(run, token, FAILED, f"LINE's paging token kept expiring ({run.restarts + 1} times): {err}")
            return
        log.warning("resync %s: paging token expired after %d pages, starting the pass over", run.id, run.pages)
        now = now_ms(self.clock)
        fields = {"pages": 0, "followers": 0, "next": "", "phase": PAGES, "restarts": run.restarts + 1,
                  "attempts": 0, "retry_at_ms": 0, "error": "", "updated_ms": now, "missing_cursor": "0"}
        self._commit(_Tx(), run, token, fields, clear_seen=True)

    def _retry_later(self, run: Run, token: str, error: str) -> None:
        attempts = run.attempts + 1
        if attempts >= self.max_attempts:
            log.error("resync %s failed after %d attempts: %s", run.id, attempts, error)
            self._finish(run, token, FAILED, f"LINE kept failing ({attempts} attempts): {error}")
            return
        now = now_ms(self.clock)
        delay = compute_backoff(attempts, base=self.retry_base, max_backoff=self.retry_max)
        log.warning("resync %s: page %d failed (attempt %d), retrying in %.1f s: %s",
                    run.id, run.pages, attempts, delay, error)
        fields = {"attempts": attempts, "retry_at_ms": now + int(delay * 1000), "error": error, "updated_ms": now}
        self._commit(_Tx(), run, token, fields)

    # ------------------------------------------------------------------ mark missing

    def _missing_step(self, run: Run, token: str) -> None:
        """Unsubscribe one HSCAN chunk of known, subscribed users that the complete pass did not list.

        Fenced from the first read to EXEC (see :meth:`_watch`): a cancel, a
        lost lease or a lost seen set at any point means nothing is written.
        """
        tx = _Tx()
        try:
            if not self._watch(tx, run, token) and run.followers:
                tx.close()
                log.error("resync %s: the seen set of the pass is gone, not marking anyone missing", run.id)
                self._finish(run, token, FAILED, "the pass's seen set was lost (expired or deleted) before "
                             "mark-missing ended; nobody was marked unsubscribed from it, run the resync again")
                return
            cursor, entries = state.scan(self.r, self.keys, run.missing_cursor or "0", count=self.missing_chunk)
            candidates = [u for u, _version, st in entries if st == SUBSCRIBED]
            missing: list[str] = []
            if candidates:
                flags = self.r.smismember(self.keys.resync_seen(run.id), candidates)
                missing = [u for u, seen in zip(candidates, flags) if not seen]
            now = now_ms(self.clock)
            base = make_version(run.started_ms, now, 0, 0)[:-4]
            changes = [state.Change(u, f"{base}{i % 10000:04d}", UNSUBSCRIBED) for i, u in enumerate(missing)]
            fields = {"missing_cursor": cursor, "phase": MISSING if cursor != "0" else FINISH,
                      "updated_ms": now, "unsubscribed": run.unsubscribed}
            if changes:
                state.apply(_Queued(tx), self.keys, changes, now_ms=now, dedupe_ttl=self.dedupe_ttl)
            res = self._commit(tx, run, token, fields)
            if changes:
                run.unsubscribed += int(res[0][0])
        finally:
            tx.close()

    def _watch(self, tx: _Tx, run: Run, token: str) -> bool:
        """Fence ``tx``: WATCH the run, the lease and the seen set, and check the run is still ours.

        Raises :class:`_Lost` when it is not (cancelled, finished, replaced,
        checkpointed by someone else, or another chunk holds the lease); from
        here on, ``tx``'s EXEC writes nothing if any of the three changes.
        Returns whether the run's seen set exists.
        """
        k = self.keys
        seen = k.resync_seen(run.id)
        cur, holder, exists = tx.watch(self.r, [k.resync_run, k.resync_lease, seen],
                                       ("HMGET", k.resync_run, "id", "status", "seq"),
                                       ("GET", k.resync_lease), ("EXISTS", seen))
        if [None if v is None else _s(v) for v in cur] != [run.id, RUNNING, str(run.seq)] or \
                holder is None or _s(holder) != token:
            raise _Lost()
        return bool(exists)

    # ------------------------------------------------------------------ writes

    def _checkpoint_cmd(self, run: Run, token: str, seq: int, fields: dict[str, Any], *,
                        seen: Sequence[str] = (), clear_seen: bool = False) -> tuple[Any, ...]:
        """The EVAL of :data:`_CHECKPOINT`: ``seen`` ids added to the run's seen set, or the set deleted."""
        args: list[Any] = [run.id, token, self.lease_ms, seq, SEEN_TTL_MS, -1 if clear_seen else len(seen), *seen]
        for k, v in fields.items():
            args += [k, str(v)]
        return ("EVAL", _CHECKPOINT, 3, self.keys.resync_run, self.keys.resync_lease, self.keys.resync_seen(run.id),
                *args)

    def _commit(self, tx: _Tx, run: Run, token: str, fields: dict[str, Any], *,
                seen: Sequence[str] = (), clear_seen: bool = False) -> list[Any]:
        """Add the fenced checkpoint to transaction ``tx``, run it, update ``run``. Returns the other results."""
        tx.add(*self._checkpoint_cmd(run, token, run.seq, fields, seen=seen, clear_seen=clear_seen))
        res = tx.execute(self.r)
        if res is None:  # a watched key changed after the check: nothing was written
            raise _Lost()
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
            raise _Lost()
        if errors:
            raise errors[0]
        for k, v in fields.items():
            setattr(run, k, v)
        run.seq += 1
        return others

    def _undo(self, run: Run, token: str, seq: int) -> None:
        fields = {k: getattr(run, k) for k in ("pages", "followers", "next", "phase", "restarts", "missing_cursor",
                                                "unsubscribed")}
        self.r.execute_command(*self._checkpoint_cmd(run, token, seq, fields))
        run.seq = seq + 1

    def _finish(self, run: Run, token: str, status: str, error: str) -> None:
        if not _finish_script(self.r, self.keys, run, token=token, status=status, error=error,
                              now=now_ms(self.clock)):
            raise _Lost()
        log.info("resync %s %s: %d followers in %d pages%s", run.id, status, run.followers, run.pages,
                 f" ({error})" if error else "")
