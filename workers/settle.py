"""What follows a Braze send, written once for every kind of work.

Both delivery loops (``/users/track`` batches in workers/deliver.py,
``/users/identify`` and ``/users/merge`` items in workers/identity.py) hand one
unit of work to :func:`deliver` through a small adapter, :class:`Work`, that
says how to split a part of it, what Braze's per-item errors name, what to do
with a part Braze took or refused, and where the unit's attempts live. What an
answer means is decided here,
by two pure functions (unit-tested without Redis, HTTP or sleeps):

1. :func:`verdict` — one send's outcome (workers/braze.classify, through
   workers/sending.py's shared policy) for a part of ``size`` items:

   - 2xx: :class:`Done` (the items Braze names in ``errors`` are dead-lettered
     with its reason, the rest delivered);
   - 400 for the whole request: :class:`Split` the part in halves, or, for a
     part of one item, :class:`Reject` it (dead-lettered with the reason);
   - 5xx, timeout, connection error: :class:`Failed`: the rest of the unit
     goes to :func:`after_failure`;
   - 429, 401/403/404, or the limiter's wait too long: :class:`Wait` with
     every worker (no attempt counted; nothing dropped);
   - not sent because the work is no longer this sender's: :class:`Lost`.

2. :func:`after_failure` — a failed unit's attempts (wherever the adapter keeps
   them: in the batch for track, per item for identify/merge) and its own
   retry time: :class:`Retry` at a growing, jittered backoff
   (shared/backoff.py, ``BRAZE_RETRY_BASE_SECONDS`` doubling to
   ``BRAZE_RETRY_MAX_SECONDS``) with one more attempt counted, or
   :class:`GiveUp` (dead-letter) after ``BRAZE_RETRY_MAX_ATTEMPTS``. Work sent
   before its retry time (the probe of a failing Braze) that fails again
   counts no attempt: the outage failed, not the work.

:func:`deliver` is the one path of a unit: :func:`send_unit` sends its parts
(the part on top of the stack goes under workers/sending.py's gate and
limiter; a split pushes its halves) until every part is answered or an answer
stops the unit (failure, wait, lost, or an adapter that stops after a refused
item); then the unit is settled through its adapter: finished, put back to
wait, left (lost), or, after a failure, each holder of attempts given its
:func:`after_failure` step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from shared.backoff import compute_backoff
from shared.clock import Clock, now_ms
from shared.config import Settings
from workers import braze as b
from workers import sending
from workers.sending import Sender


@dataclass(frozen=True)
class Policy:
    """How often and how patiently failed work is tried again."""

    max_attempts: int
    base_s: float = 1.0
    max_backoff_s: float = 600.0

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(settings.braze_retry_max_attempts, settings.braze_retry_base_seconds,
                   settings.braze_retry_max_seconds)


# -- what one send means ------------------------------------------------------------

@dataclass(frozen=True)
class Done:
    errors: Sequence[tuple[str, int, str]] = ()  # (request array, index, reason) Braze named


@dataclass(frozen=True)
class Split:
    pass


@dataclass(frozen=True)
class Reject:
    reason: str


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Wait:
    pass


@dataclass(frozen=True)
class Lost:
    pass


Verdict = Union[Done, Split, Reject, Failed, Wait, Lost]


def verdict(outcome: sending.Outcome, size: int) -> Verdict:
    """What the answer to a part of ``size`` items means for it."""
    if isinstance(outcome, b.Delivered):
        return Done(tuple(outcome.errors))
    if isinstance(outcome, b.BadRequest):
        return Reject(outcome.reason) if size <= 1 else Split()
    if isinstance(outcome, b.Retryable):
        return Failed(outcome.reason)
    if isinstance(outcome, sending.Lost):
        return Lost()
    return Wait()  # 429, auth failure, or held by the limiter


# -- what a failure means -------------------------------------------------------------

@dataclass(frozen=True)
class Retry:
    at_ms: int       # go again then
    attempts: int    # failed attempts, this one included if counted
    counted: bool    # False: sent early as a probe, its own retry time and attempts stand


@dataclass(frozen=True)
class GiveUp:
    reason: str
    attempts: int


def after_failure(attempts: int, retry_at_ms: int, now_ms: int, reason: str, policy: Policy, *,
                  rng: random.Random | None = None) -> Retry | GiveUp:
    """The next step of work that failed with ``reason`` after ``attempts`` earlier failures
    (``retry_at_ms``: when its own backoff was to let it go again; 0 if it never failed)."""
    if now_ms < retry_at_ms:
        return Retry(retry_at_ms, attempts, counted=False)
    n = attempts + 1
    if n >= policy.max_attempts:
        return GiveUp(f"gave up after {n} attempts: {reason}", n)
    delay = compute_backoff(n, base=policy.base_s, max_backoff=policy.max_backoff_s, rng=rng)
    return Retry(now_ms + int(delay * 1000), n, counted=True)


# -- one unit, sent and settled ------------------------------------------------------------

class Work(Protocol):
    """One unit of one kind of work (a /users/track batch, a group of identify or merge items):
    the adapter :func:`deliver` drives. Its methods say how to split a part, what to do with
    what Braze took or refused, where the unit's attempts live, and how to put it back.

    ``keep`` (or None) is asked right before each request: False means the unit is no longer
    this sender's (workers/sending.py returns Lost without sending).
    """

    keep: Callable[[], bool] | None

    def root(self) -> Any:
        """The whole unit, as its first part."""

    def size(self, part: Any) -> int:
        """Items in the part (a part of one is refused alone, not split)."""

    def halves(self, part: Any) -> tuple[Any, Any]: ...

    def request(self, part: Any) -> Callable[[], b.Outcome] | None:
        """The request sending ``part`` (None: nothing in it to send)."""

    def done(self, part: Any, errors: Sequence[tuple[str, int, str]]) -> None:
        """Braze took ``part``, except the items named in ``errors`` (to dead-letter)."""

    def reject(self, part: Any, reason: str) -> bool:
        """Braze refused ``part``, one item, with 400: dead-letter it. True stops the unit."""

    # -- settling the unit (each returns what :func:`deliver` returns) --
    def finish(self) -> Any:
        """Every part answered: settle the unit."""

    def stopped_by_reject(self, reason: str) -> Any:
        """:meth:`reject` stopped the unit."""

    def attempts(self, rest: list) -> list[tuple[Any, int, int]]:
        """Where the attempts of the parts not delivered live: (holder, attempts, retry_at ms) each."""

    def failed(self, reason: str, steps: list[tuple[Any, Retry | GiveUp]]) -> Any:
        """Apply each holder's :func:`after_failure` step (store its retry, or dead-letter it)."""

    def wait(self, until_ms: int) -> Any:
        """Put the unit back until ``until_ms``, no attempt counted."""

    def lost(self) -> Any:
        """The unit is no longer this sender's: leave it."""


@dataclass
class Stopped:
    """The answer that stopped a unit, and the parts not delivered (the one sent first)."""

    verdict: Verdict
    outcome: sending.Outcome
    rest: list = field(default_factory=list)


def deliver(work: Work, sender: Sender, clock: Clock, policy: Policy) -> Any:
    """Send one unit of work and settle it: the one delivery path of every kind of work.

    The gate and the limiter are the sender's (workers/sending.py) and Braze's
    answers are classified by workers/braze.classify; each answer's meaning is
    :func:`verdict`'s, each failure's next step :func:`after_failure`'s.
    """
    stop = send_unit(work, sender)
    if stop is None:
        return work.finish()
    v = stop.verdict
    if isinstance(v, Lost):
        return work.lost()
    if isinstance(v, Reject):
        return work.stopped_by_reject(v.reason)
    if isinstance(v, Failed):
        now = now_ms(clock)
        return work.failed(v.reason, [(h, after_failure(n, at, now, v.reason, policy))
                                      for h, n, at in work.attempts(stop.rest)])
    return work.wait(sender.wait_after(stop.outcome))


def send_unit(work: Work, sender: Sender) -> Stopped | None:
    """Send every part of ``work`` (splitting on 400), telling it what Braze took and refused.

    Returns None when every part was answered, or what stopped the unit.
    """
    stack = [work.root()]
    while stack:
        part = stack.pop()
        call = work.request(part)
        if call is None:
            continue
        outcome = sender.send(call, keep=work.keep)
        v = verdict(outcome, work.size(part))
        if isinstance(v, Done):
            work.done(part, v.errors)
        elif isinstance(v, Split):
            stack.extend(reversed(work.halves(part)))
        elif isinstance(v, Reject):
            if work.reject(part, v.reason):
                return Stopped(v, outcome, [part, *reversed(stack)])
        else:
            return Stopped(v, outcome, [part, *reversed(stack)])
    return None
