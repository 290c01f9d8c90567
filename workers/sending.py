"""Sending one request to Braze under the cluster-wide limiter: written once.

Both senders (``/users/track`` batches in workers/deliver.py, ``/users/identify``
and ``/users/merge`` in workers/identity.py) go through :class:`Sender`:

1. :meth:`Sender.gate` before taking work (an open answer is reused for
   100 ms by the process's senders): while every worker must wait (a
   pause, an open breaker) a sender takes nothing, so during an outage updates
   wait in the outbox, coalescing, instead of piling up in retrying batches.
   When the breaker is half-open the gate says ``probe``: the sender may take
   a batch waiting to retry early, since its answer ends the outage for all.
2. :meth:`Sender.send` reserves a slot of the limiter at most 2 s away (one
   script call) and waits for it; then, if the caller gave a ``keep`` check
   (workers/deliver.py: is the batch's lease still ours, with room for a whole
   request?), asks it last thing before the request and returns :class:`Lost`
   without sending when it says no. Then it makes the request, and applies what the answer means for *every* worker:
   - 2xx / whole-request 400: a successful probe closes the breaker (and calls
     ``on_recovered``); ``X-RateLimit-Remaining: 0`` pauses until the reset;
   - 429: every worker pauses until ``X-RateLimit-Reset``;
   - 401 / 403 / 404: every worker pauses ``BRAZE_AUTH_RETRY_SECONDS``, logged
     at CRITICAL; nothing is dropped;
   - 5xx, timeout, connection error: the shared breaker opens.
   It returns the classified outcome, or :class:`Held` when the limiter wants
   a longer wait than a sender holds work for. What happens to the work itself
   (finish, retry with its own backoff, bisect, dead-letter) is the caller's.

What the policy meets is counted here, in this process (workers/metrics.py):
the wait for each slot, each pause set (:meth:`Sender.pause`, by kind), each
failure fed to the breaker, and whether the gate was last seen closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.clock import Clock, now_ms
from shared.limiter import Decision, Limiter
from workers import braze as b
from workers import metrics

log = logging.getLogger(__name__)

# Longest wait for a rate-limit token while holding work; past it the work is put back (ms).
MAX_TOKEN_WAIT_MS = 2_000
# An open gate is trusted this long (s) before asking Redis again: one look per process
# and 100 ms instead of one per batch. A pause set meanwhile by another worker is still
# obeyed: the token is refused (Held) and the work put back.
GATE_CACHE_S = 0.1


@dataclass(frozen=True)
class Held:
    """Not sent: every worker must wait until ``until_ms`` (a pause, the breaker, another probe)."""

    until_ms: int
    why: str


@dataclass(frozen=True)
class Gate:
    wait_ms: int       # 0 = go ahead
    probe: bool = False  # half-open breaker: this sender may probe


@dataclass(frozen=True)
class Lost:
    """Not sent: the caller no longer holds the work (its lease lapsed and another sender took it)."""


Outcome = b.Outcome | Held | Lost


class Sender:
    def __init__(self, limiter: Limiter, clock: Clock, *, auth_retry_seconds: float, what: str,
                 on_recovered: Callable[[], None] = lambda: None, max_token_wait_ms: int = MAX_TOKEN_WAIT_MS):
        self.limiter, self.clock = limiter, clock
        self.auth_retry_ms = int(auth_retry_seconds * 1000)
        self.what = what  # for log lines: "/users/track", "identify/merge"
        self.on_recovered = on_recovered
        self.max_token_wait_ms = max_token_wait_ms
        self._gate_open_until = 0.0  # clock time until which the gate is known open

    def gate(self) -> Gate:
        """May a sender take work now? An open answer is trusted for ``GATE_CACHE_S`` in this process."""
        now = self.clock.now()
        if now < self._gate_open_until:
            return Gate(0)
        d = self.limiter.peek(int(now * 1000))
        if d.allowed and not d.probe:
            self._gate_open_until = now + GATE_CACHE_S
        metrics.gate_closed(self.limiter.name, not d.allowed)
        return Gate(0 if d.allowed else max(1, d.wait_ms), probe=d.probe)

    def send(self, call: Callable[[], b.Outcome], *, keep: Callable[[], bool] | None = None) -> Outcome:
        """Make the request ``call`` under the limiter; ``keep`` (if given) is asked after the
        limiter's wait, right before the request: False means the work is no longer ours."""
        decision = self._token()
        if isinstance(decision, Held):
            return decision
        if keep is not None and not keep():
            return Lost()
        outcome = call()
        now = now_ms(self.clock)
        if not isinstance(outcome, b.Delivered) or outcome.pause_until:
            self._gate_open_until = 0.0  # look at the shared gate again before the next work
        if isinstance(outcome, (b.Delivered, b.BadRequest)):
            if decision.probe:
                self.limiter.succeeded()
                log.warning("%s answers again: delivery resumes", self.what)
                self.on_recovered()
            if isinstance(outcome, b.Delivered) and outcome.pause_until:
                self.pause(int(outcome.pause_until * 1000), "X-RateLimit-Remaining: 0", "rate_limit", now_ms=now)
        elif isinstance(outcome, b.RateLimited):
            until = self.pause(int(outcome.reset_at * 1000), "HTTP 429 from Braze", "rate_limit", now_ms=now)
            log.warning("%s rate-limited by Braze: every worker waits %.1f s", self.what, (until - now) / 1000)
        elif isinstance(outcome, b.AuthFailure):
            log.critical("Braze rejected %s (%s): delivery paused for every worker; check BRAZE_REST_ENDPOINT "
                         "and BRAZE_API_KEY. Nothing is dropped.", self.what, outcome.reason)
            self.pause(now + self.auth_retry_ms, outcome.reason, "auth", now_ms=now)
        else:
            streak, open_until = self.limiter.failed(now)
            metrics.breaker_failed(self.limiter.name)
            metrics.gate_closed(self.limiter.name, True)
            log.warning("%s failed (%s): every worker waits %.1f s (failure #%d in a row)",
                        self.what, outcome.reason, max(0, open_until - now) / 1000, streak)
        return outcome

    def pause(self, until_ms: int, reason: str, kind: str, *, now_ms: int) -> int:
        """Every worker waits until ``until_ms`` (kind ``rate_limit``, ``auth`` or ``config``). Returns the end (ms)."""
        until = self.limiter.pause(until_ms, reason, kind, now_ms=now_ms)
        self._gate_open_until = 0.0
        metrics.paused(self.limiter.name, kind)
        metrics.gate_closed(self.limiter.name, until > now_ms)
        return until

    def wait_after(self, outcome: Outcome) -> int:
        """Until when (ms) work that was not done because of ``outcome`` should wait."""
        now = now_ms(self.clock)
        if isinstance(outcome, Held):
            return outcome.until_ms
        state = self.limiter.peek(now)
        return now + (state.wait_ms if not state.allowed else 0)

    def _token(self) -> Decision | Held:
        """Reserve a slot of the shared limiter at most ``max_token_wait_ms`` away and wait for it."""
        waited = 0
        while True:
            now = now_ms(self.clock)
            d = self.limiter.acquire(now, reserve_ms=self.max_token_wait_ms - waited)
            if d.allowed:
                if d.wait_ms:
                    self.clock.sleep(d.wait_ms / 1000)
                metrics.limiter_waited(self.limiter.name, (waited + d.wait_ms) / 1000)
                return d
            if d.why == "probing" and waited + d.wait_ms <= self.max_token_wait_ms:
                self.clock.sleep(d.wait_ms / 1000)  # another worker probes a failing Braze: its answer decides
                waited += d.wait_ms
                continue
            self._gate_open_until = 0.0
            metrics.gate_closed(self.limiter.name, True)
            return Held(now + d.wait_ms, d.why)
