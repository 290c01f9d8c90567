"""The delivery loop's decisions (workers/settle.py): pure, no Redis, no HTTP, no sleeps."""

import random

from shared.clock import FakeClock
from workers import braze as b
from workers import sending, settle
from workers.settle import Done, Failed, GiveUp, Lost, Policy, Reject, Retry, Split, Wait

POLICY = Policy(max_attempts=4, base_s=1.0, max_backoff_s=8.0)


def test_what_one_answer_means_for_a_part():
    assert settle.verdict(b.Delivered(), 5) == Done(())
    assert settle.verdict(b.Delivered([("attributes", 1, "bad")]), 5) == Done((("attributes", 1, "bad"),))
    assert settle.verdict(b.BadRequest("HTTP 400"), 5) == Split()
    assert settle.verdict(b.BadRequest("HTTP 400"), 1) == Reject("HTTP 400")
    assert settle.verdict(b.Retryable("HTTP 503"), 5) == Failed("HTTP 503")
    for o in (b.RateLimited(1.0), b.AuthFailure("HTTP 401"), sending.Held(5, "pause")):
        assert settle.verdict(o, 5) == Wait()
    assert settle.verdict(sending.Lost(), 5) == Lost()


def test_a_failure_counts_an_attempt_and_waits_a_growing_jittered_backoff():
    clock = FakeClock(1_000.0)
    now = int(clock.now() * 1000)
    rng = random.Random(7)
    caps = []
    attempts, retry_at = 0, 0
    for _ in range(3):
        step = settle.after_failure(attempts, retry_at, now, "HTTP 503", POLICY, rng=rng)
        assert isinstance(step, Retry) and step.counted and step.attempts == attempts + 1
        caps.append(min(8.0, 2 ** attempts))
        assert now <= step.at_ms <= now + caps[-1] * 1000
        attempts, retry_at = step.attempts, step.at_ms
        clock.advance((step.at_ms - now) / 1000)
        now = int(clock.now() * 1000)
    assert caps == [1.0, 2.0, 4.0]
    assert settle.after_failure(attempts, retry_at, now, "HTTP 503", POLICY) == \
        GiveUp("gave up after 4 attempts: HTTP 503", 4)


def test_the_backoff_stops_growing_at_its_ceiling():
    rng = random.Random(1)
    delays = [settle.after_failure(n, 0, 0, "x", Policy(100, 1.0, 8.0), rng=rng).at_ms for n in range(3, 40)]
    assert max(delays) <= 8000


def test_a_failed_probe_sent_before_its_retry_time_counts_no_attempt():
    assert settle.after_failure(2, 9_000, 5_000, "HTTP 503", POLICY) == Retry(9_000, 2, counted=False)


class Parts:
    """An adapter over a list of item names: Braze refuses any request holding a 'bad' one."""

    keep = None

    def __init__(self, items, refuse_over=None):
        self.items, self.sent, self.delivered, self.dead = items, [], [], []
        self.refuse_over = refuse_over

    def root(self):
        return list(self.items)

    def size(self, part):
        return len(part)

    def halves(self, part):
        return part[:len(part) // 2], part[len(part) // 2:]

    def request(self, part):
        if not part:
            return None
        def call():
            self.sent.append(list(part))
            if self.refuse_over is not None and len(self.sent) > self.refuse_over:
                return b.Retryable("HTTP 503")
            return b.BadRequest("HTTP 400") if any(x.startswith("bad") for x in part) else b.Delivered()
        return call

    def done(self, part, errors):
        self.delivered += part

    def reject(self, part, reason):
        self.dead += part
        return False


class DirectSender:
    def send(self, call, *, keep=None):
        return call()


def test_a_refused_unit_is_halved_until_the_bad_items_are_alone():
    items = [f"u{i}" for i in range(8)]
    items[5] = "bad5"
    work = Parts(items)
    assert settle.send_unit(work, DirectSender()) is None
    assert work.dead == ["bad5"] and sorted(work.delivered) == sorted(set(items) - {"bad5"})
    assert len(work.sent) == 1 + 2 * 3              # log2(8) levels, two requests each


def test_a_failure_mid_unit_stops_it_with_every_part_not_delivered():
    work = Parts(["a", "bad", "c", "d"], refuse_over=2)
    stop = settle.send_unit(work, DirectSender())
    assert work.sent == [["a", "bad", "c", "d"], ["a", "bad"], ["a"]]
    assert isinstance(stop.verdict, Failed) and stop.rest == [["a"], ["bad"], ["c", "d"]]


class Settling(Parts):
    """Parts whose attempts live per item (like identify/merge), recording how the unit settled."""

    def __init__(self, items, answers, attempts=None):
        super().__init__(items)
        self.answers, self.attempts_of, self.settled = list(answers), attempts or {}, None

    def request(self, part):
        def call():
            self.sent.append(list(part))
            return self.answers.pop(0)
        return call if part else None

    def finish(self):
        self.settled = ("finish",)
        return 0.0

    def stopped_by_reject(self, reason):
        self.settled = ("stopped", reason)

    def attempts(self, rest):
        return [(x, *self.attempts_of.get(x, (0, 0))) for part in rest for x in part]

    def failed(self, reason, steps):
        self.settled = ("failed", reason, steps)
        return 0.05

    def wait(self, until_ms):
        self.settled = ("wait", until_ms)

    def lost(self):
        self.settled = ("lost",)


class WaitingSender(DirectSender):
    def wait_after(self, outcome):
        return 42_000


def test_deliver_settles_a_failed_unit_through_each_holders_attempts():
    clock = FakeClock(100.0)
    work = Settling(["a", "b", "c"], [b.BadRequest("HTTP 400"), b.Delivered(), b.Retryable("HTTP 503")],
                    attempts={"b": (3, 0), "c": (1, 500_000)})
    assert settle.deliver(work, WaitingSender(), clock, POLICY) == 0.05
    assert work.sent == [["a", "b", "c"], ["a"], ["b", "c"]] and work.delivered == ["a"]
    _, reason, steps = work.settled
    assert reason == "HTTP 503" and [h for h, _ in steps] == ["b", "c"]
    assert steps[0][1] == GiveUp("gave up after 4 attempts: HTTP 503", 4)      # b's last attempt
    assert steps[1][1] == Retry(500_000, 1, counted=False)                       # c sent early: not counted


def test_deliver_puts_a_unit_back_to_wait_or_leaves_it_when_lost():
    clock = FakeClock(100.0)
    work = Settling(["a"], [b.RateLimited(1.0)])
    settle.deliver(work, WaitingSender(), clock, POLICY)
    assert work.settled == ("wait", 42_000)
    work = Settling(["a"], [sending.Lost()])
    settle.deliver(work, WaitingSender(), clock, POLICY)
    assert work.settled == ("lost",)
    work = Settling(["a", "b"], [b.Delivered([("x", 1, "bad")])])
    assert settle.deliver(work, WaitingSender(), clock, POLICY) == 0.0 and work.settled == ("finish",)
