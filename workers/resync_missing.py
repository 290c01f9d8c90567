"""The mark-missing phase of a resync run: known users absent from a complete pass become unsubscribed.

Off by default (``RESYNC_MARK_MISSING_UNSUBSCRIBED``). CAVEAT (LINE): the
follower list only contains users who consented to it (and never blocked
users), so this unsubscribes followers who did not consent.

After a complete pass the state is walked twice with
:func:`shared.state.scan` (chunks of ``missing_chunk``), each chunk's
subscribed users checked against the run's seen set (SMISMEMBER):

1. The first walk only counts the subscribed users the pass did not list
   (``missing_found``). At its end :func:`refusal` decides: a pass that
   listed 0 followers never marks anyone; one that listed fewer than
   ``mark_missing_min_share`` of the known followers (listed + absent) is
   refused unless the run was started with ``force_mark_missing``. A refused
   run ends ``failed`` with "mark-missing refused: …" and nobody is touched.
2. The second walk gives each of them an unsubscribe versioned at the run's
   start, so any event newer than the run still wins.

Every chunk is fenced from its first read to its EXEC (:func:`_watch`): a
cancel (which deletes the seen set), a lost lease or a lost seen set at any
point means nothing is written, so they never turn into unsubscribes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared import state
from shared.clock import now_ms
from shared.events import SUBSCRIBED, UNSUBSCRIBED
from shared.resp import Queued, Transaction
from shared.resync_runs import FAILED, FINISH, MISSING, RUNNING, Lost, Run, _s

if TYPE_CHECKING:
    from workers.resync import Resync

log = logging.getLogger("workers.resync")  # one logger for the whole pass


def step(rs: Resync, run: Run, token: str) -> None:
    """One scan chunk of the phase: counted (first walk) or marked (second walk)."""
    tx = Transaction()
    try:
        if not _watch(rs, tx, run, token) and run.followers:
            tx.close()
            log.error("resync %s: the seen set of the pass is gone, not marking anyone missing", run.id)
            rs.end(run, token, FAILED, "the pass's seen set was lost (expired or deleted) before "
                       "mark-missing ended; nobody was marked unsubscribed from it, run the resync again")
            return
        cursor, entries = state.scan(rs.r, rs.keys, run.missing_cursor or "0", count=rs.missing_chunk)
        candidates = [u for u, _version, st in entries if st == SUBSCRIBED]
        missing: list[str] = []
        if candidates:
            flags = rs.r.smismember(rs.keys.resync_seen(run.id), candidates)
            missing = [u for u, seen in zip(candidates, flags) if not seen]
        now = now_ms(rs.clock)
        if not run.missing_counted:
            _count(rs, tx, run, token, cursor, run.missing_found + len(missing), now)
            return
        fields = {"missing_cursor": cursor, "phase": MISSING if cursor != "0" else FINISH,
                  "updated_ms": now, "unsubscribed": run.unsubscribed}
        if missing:
            rs.write_states(Queued(tx), run, missing, UNSUBSCRIBED, now)
        res = rs.commit(tx, run, token, fields)
        if missing:
            run.unsubscribed += int(res[0][0])
    finally:
        tx.close()


def _count(rs: Resync, tx: Transaction, run: Run, token: str, cursor: str, found: int, now: int) -> None:
    """Checkpoint the count so far; at its end, refuse, finish (nobody absent) or go on to mark them."""
    fields: dict[str, Any] = {"missing_cursor": cursor, "missing_found": found, "updated_ms": now}
    if cursor == "0":
        why = refusal(run, found, rs.mark_missing_min_share)
        if why:
            tx.close()
            run.missing_found = found
            log.error("resync %s: %s", run.id, why)
            rs.end(run, token, FAILED, why)
            return
        fields.update(missing_counted=True, phase=MISSING if found else FINISH)
        if run.force_mark_missing and found:
            log.warning("resync %s: marking %d absent users unsubscribed, share check overridden by the operator "
                        "(%d listed)", run.id, found, run.followers)
    rs.commit(tx, run, token, fields)


def refusal(run: Run, found: int, min_share: float) -> str:
    """Why the ``found`` absent users must not be marked unsubscribed ('' = they may be).

    A pass that listed nobody never marks anyone (an empty list from LINE is
    never trusted, even with the override); one that listed fewer than
    ``min_share`` of the known followers (listed + absent) is refused unless
    the operator forced this run.
    """
    if not found:
        return ""
    known = run.followers + found
    if not run.followers:
        return (f"mark-missing refused: the complete pass listed 0 followers while linesync knows {found:,} "
                "subscribed users; an empty follower list is never trusted, nobody was marked unsubscribed")
    if run.force_mark_missing or run.followers >= min_share * known:
        return ""
    return (f"mark-missing refused: the pass listed {run.followers:,} followers, {run.followers / known:.1%} of "
            f"the {known:,} linesync knows ({found:,} subscribed users absent from it), below "
            f"LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE={min_share:g}; nobody was marked "
            "unsubscribed. If LINE's list is right, run `linesync resync --force-mark-missing`")


def _watch(rs: Resync, tx: Transaction, run: Run, token: str) -> bool:
    """Fence ``tx``: WATCH the run, the lease and the seen set, and check the run is still ours.

    Raises :class:`Lost` when it is not (cancelled, finished, replaced,
    checkpointed by someone else, or another chunk holds the lease); from
    here on, ``tx``'s EXEC writes nothing if any of the three changes.
    Returns whether the run's seen set exists.
    """
    k = rs.keys
    seen = k.resync_seen(run.id)
    cur, holder, exists = tx.watch(rs.r, [k.resync_run, k.resync_lease, seen],
                                   ("HMGET", k.resync_run, "id", "status", "seq"),
                                   ("GET", k.resync_lease), ("EXISTS", seen))
    if [None if v is None else _s(v) for v in cur] != [run.id, RUNNING, str(run.seq)] or \
            holder is None or _s(holder) != token:
        raise Lost()
    return bool(exists)
