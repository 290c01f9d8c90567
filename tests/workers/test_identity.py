import pytest

from shared import dlq, identity, links
from shared.clock import FakeClock
from shared.limiter import Limiter
from workers import braze as b
from workers.identity import IdentityDeliverer
from workers.sending import Sender

U1 = "U" + "a" * 32
U2 = "U" + "b" * 32


class ScriptedBraze:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def post(self, path, payload, *, now):
        self.calls.append((path, payload))
        return self.outcomes.pop(0) if self.outcomes else b.Delivered()


@pytest.fixture
def make(r, keys, settings):
    def _make(braze, **overrides):
        s = settings.replace(**overrides)
        clock = FakeClock()
        lim = Limiter(r, keys, "identify", s.braze_identify_rate_limit)
        sender = Sender(lim, clock, auth_retry_seconds=s.braze_auth_retry_seconds, what="identify")
        return IdentityDeliverer(r, keys, s, braze, sender, clock, consumer="h:1:test/identity"), clock
    return _make


def test_identify_and_merge_are_batched_by_kind_and_link(r, keys, make):
    braze = ScriptedBraze()
    for i in range(60):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", "U" + f"{i:032x}")
    identity.enqueue(r, keys, identity.MERGE, "crm-m", U2)
    d, clock = make(braze)
    for _ in range(3):
        d.step(block_ms=10)
        clock.advance(1)
    paths = [(p, len(next(iter(body.values())))) for p, body in braze.calls]
    assert paths == [("/users/identify", 50), ("/users/identify", 10), ("/users/merge", 1)]
    assert braze.calls[0][1]["aliases_to_identify"][0] == {
        "external_id": "crm-0", "user_alias": {"alias_name": "U" + "0" * 32, "alias_label": "line_id"}}
    assert braze.calls[2][1]["merge_updates"][0] == {
        "identifier_to_merge": {"user_alias": {"alias_name": U2, "alias_label": "line_id"}},
        "identifier_to_keep": {"external_id": "crm-m"}}
    assert links.line_user(r, keys, "crm-m") == U2 and links.line_user(r, keys, "crm-59")
    assert r.xlen(keys.identity) == 0


def test_failures_are_retried_then_dead_lettered(r, keys, make):
    braze = ScriptedBraze(*[b.Retryable("HTTP 500")] * 5)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    d, clock = make(braze, braze_retry_max_attempts=3)
    for _ in range(10):
        d.step(block_ms=10)
        clock.advance(1000)
    assert len(braze.calls) == 3
    assert r.xlen(keys.dlq) == 1 and links.line_user(r, keys, "crm-1") is None


def test_named_errors_are_dead_lettered_and_the_rest_linked(r, keys, make):
    braze = ScriptedBraze(b.Delivered([("aliases_to_identify", 0, "alias already identified")]))
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    d, _ = make(braze)
    d.step(block_ms=10)
    assert links.line_user(r, keys, "crm-1") is None and links.line_user(r, keys, "crm-2") == U2
    assert r.xrange(keys.dlq)[0][1][b"reason"] == b"alias already identified"


def test_whole_request_400_finds_the_bad_item(r, keys, make):
    braze = ScriptedBraze(b.BadRequest("HTTP 400"), b.Delivered(), b.BadRequest("HTTP 400: bad"))
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    d, _ = make(braze)
    d.step(block_ms=10)
    assert links.line_user(r, keys, "crm-1") == U1
    assert r.xlen(keys.dlq) == 1 and links.line_user(r, keys, "crm-2") is None


def test_identify_waits_until_the_users_profile_reached_braze(r, keys, make):
    braze = ScriptedBraze()
    r.zadd(keys.outbox_ready, {U1: 1})           # U1's follow is still on its way to Braze
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    d, clock = make(braze)
    d.step(block_ms=10)
    assert [c[1]["aliases_to_identify"][0]["external_id"] for c in braze.calls] == ["crm-2"]
    r.zrem(keys.outbox_ready, U1)
    r.hset(keys.outbox_inflight, U1, "batch-1")   # now in flight: still waiting
    clock.advance(1)
    d.step(block_ms=10)
    assert len(braze.calls) == 1
    r.hdel(keys.outbox_inflight, U1)              # delivered
    clock.advance(1)
    d.step(block_ms=10)
    assert [c[1]["aliases_to_identify"][0]["external_id"] for c in braze.calls] == ["crm-2", "crm-1"]


def test_a_dead_lettered_merge_is_sent_again_after_a_replay(r, keys, make):
    braze = ScriptedBraze(b.BadRequest("HTTP 400: unknown external_id"))
    identity.enqueue(r, keys, identity.MERGE, "crm-1", U1)
    d, clock = make(braze)
    d.step(block_ms=10)
    assert r.xlen(keys.dlq) == 1 and r.xlen(keys.identity) == 0
    done = dlq.replay(r, keys, dlq.list_letters(r, keys), now_ms=1)  # the operator fixed the profile
    assert done.replayed == {"merge": 1} and r.xlen(keys.dlq) == 0
    clock.advance(1)
    d.step(block_ms=10)
    assert [p for p, _ in braze.calls] == ["/users/merge", "/users/merge"]
    assert braze.calls[1][1] == braze.calls[0][1]
    assert links.line_user(r, keys, "crm-1") == U1


# -- several loops on one stream (each worker process runs one, named <worker>/identity) ----------

def sent(braze) -> list[str]:
    """external_ids of the items Braze accepted (2xx answers), in order."""
    return [item["external_id"] for (path, body), outcome in zip(braze.calls, braze.answers)
            if isinstance(outcome, b.Delivered) for item in body["aliases_to_identify"]]


class RecordingBraze(ScriptedBraze):
    def __init__(self, *outcomes):
        super().__init__(*outcomes)
        self.answers = []

    def post(self, path, payload, *, now):
        out = super().post(path, payload, now=now)
        self.answers.append(out)
        return out


@pytest.fixture
def loop(r, keys, settings):
    """An identity loop of worker ``worker`` (which holds its lease): like a worker process's."""
    def is_alive(worker):
        return bool(worker) and bool(r.exists(keys.worker(worker)))

    def _loop(worker, braze, clock):
        r.set(keys.worker(worker), "1")
        lim = Limiter(r, keys, "identify", settings.braze_identify_rate_limit)
        sender = Sender(lim, clock, auth_retry_seconds=settings.braze_auth_retry_seconds, what="identify")
        return IdentityDeliverer(r, keys, settings, braze, sender, clock, consumer=f"{worker}/identity",
                                 is_alive=is_alive)
    return _loop


def age_pending(r, keys, ms):
    """Every pending identity item looks idle for ``ms``: its holder did nothing for that long
    (a breaker wait, a 429 pause, a long step)."""
    for p in r.xpending_range(keys.identity, "workers", min="-", max="+", count=1000):
        r.xclaim(keys.identity, "workers", p["consumer"], 0, [p["message_id"]], idle=ms, justid=True)


def run(loops, clock, rounds=8):
    for _ in range(rounds):
        clock.advance(6)  # past the breaker or the pause, and a recovery interval
        for d in loops:
            d.step(block_ms=10)


@pytest.mark.parametrize("failure", [b.Retryable("HTTP 503"), b.RateLimited(reset_at=1_700_000_003.0)],
                         ids=["breaker", "429-pause"])
def test_items_left_pending_past_the_claim_idle_time_reach_braze_once(r, keys, settings, loop, failure):
    braze, clock = RecordingBraze(failure), FakeClock()
    a, b_ = loop("host:1:aaa", braze, clock), loop("host:2:bbb", braze, clock)
    ids = [f"crm-{i}" for i in range(12)]
    for i, ext in enumerate(ids):
        identity.enqueue(r, keys, identity.IDENTIFY, ext, "U" + f"{i:032x}")
    a.step(block_ms=10)              # a takes all 12 and Braze fails: they stay a's, unsettled
    assert len(braze.calls) == 1 and r.xpending(keys.identity, "workers")["pending"] == 12
    b_.step(block_ms=10)             # every worker waits
    age_pending(r, keys, settings.consume_claim_idle_ms + 1000)
    run([b_, a], clock)
    assert sorted(sent(braze)) == sorted(ids)          # each once: none lost, none sent by both
    assert all(links.line_user(r, keys, ext) for ext in ids)
    assert r.xlen(keys.identity) == 0 and r.xlen(keys.dlq) == 0


def test_a_waiting_loop_keeps_its_items_and_a_dead_workers_items_are_taken_over(r, keys, settings, loop):
    braze, clock = RecordingBraze(b.Retryable("HTTP 503")), FakeClock()
    a, b_ = loop("host:1:aaa", braze, clock), loop("host:2:bbb", braze, clock)
    for i in range(6):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", "U" + f"{i:032x}")
    a.step(block_ms=10)              # a holds 6, Braze failed
    age_pending(r, keys, settings.consume_claim_idle_ms + 1000)
    a.step(block_ms=10)              # still waiting for the breaker: a renews what it holds
    clock.advance(6)
    b_.step(block_ms=10)             # b recovers: nothing is stale, a is alive
    owners = {p["consumer"] for p in r.xpending_range(keys.identity, "workers", min="-", max="+", count=100)}
    assert owners == {b"host:1:aaa/identity"}
    r.delete(keys.worker("host:1:aaa"))  # a is SIGKILLed: its lease lapses
    age_pending(r, keys, 2000)
    for i in range(6, 12):           # queued meanwhile
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", "U" + f"{i:032x}")
    c = loop("host:3:ccc", braze, clock)  # a's replacement
    run([b_, c], clock)
    assert sorted(sent(braze)) == sorted(f"crm-{i}" for i in range(12))
    assert r.xlen(keys.identity) == 0 and r.xlen(keys.dlq) == 0
    names = {x["name"].decode() for x in r.xinfo_consumers(keys.identity, "workers")}
    assert "host:1:aaa/identity" not in names


def test_items_an_older_release_left_with_consumer_identity_0_are_taken_over(r, keys, settings, loop):
    braze, clock = RecordingBraze(), FakeClock()
    identity.enqueue(r, keys, identity.MERGE, "crm-1", U1)
    r.xgroup_create(keys.identity, "workers", id="0")
    r.xreadgroup("workers", "identity-0", {keys.identity: ">"})
    age_pending(r, keys, 2000)
    run([loop("host:1:aaa", braze, clock)], clock, rounds=2)
    assert [p for p, _ in braze.calls] == ["/users/merge"] and links.line_user(r, keys, "crm-1") == U1
    assert r.xlen(keys.identity) == 0


def test_a_loop_whose_items_were_taken_over_mid_step_does_not_send_them_too(r, keys, settings, loop):
    clock = FakeClock()
    holder = {}

    class SlowBraze(RecordingBraze):
        def post(self, path, payload, *, now):
            out = super().post(path, payload, now=now)
            if len(self.calls) == 1:  # a's first request takes longer than the claim idle time...
                age_pending(r, keys, settings.consume_claim_idle_ms + 1000)
                holder["b"].stream.recover()  # ...and b takes a's items over as stale meanwhile
            return out

    braze = SlowBraze(b.BadRequest("HTTP 400"))
    a = loop("host:1:aaa", braze, clock)
    holder["b"] = loop("host:2:bbb", braze, clock)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    a.step(block_ms=10)              # 400: a would now send them one by one, but they are b's
    assert len(braze.calls) == 1
    run([holder["b"], a], clock, rounds=2)
    assert sorted(sent(braze)) == ["crm-1", "crm-2"]
    assert r.xlen(keys.identity) == 0 and r.xlen(keys.dlq) == 0


# -- the same settling as /users/track: halving, per-item backoff, release on recovery ----------

def ext_ids(call) -> list[str]:
    return [it["external_id"] for it in call[1]["aliases_to_identify"]]


def test_a_refused_group_is_halved_until_the_bad_item_is_alone(r, keys, make):
    class RefusingBraze(ScriptedBraze):
        def post(self, path, payload, *, now):
            self.calls.append((path, payload))
            bad = any(it["external_id"] == "crm-5" for it in payload["aliases_to_identify"])
            return b.BadRequest("HTTP 400: bad alias") if bad else b.Delivered()

    braze = RefusingBraze()
    for i in range(8):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", "U" + f"{i:032x}")
    d, _ = make(braze)
    d.step(block_ms=10)
    assert len(braze.calls) == 1 + 2 * 3             # halving: not 1 + 8 one by one
    [(_, letter)] = r.xrange(keys.dlq)
    assert letter[b"kind"] == b"identify" and letter[b"reason"] == b"HTTP 400: bad alias"
    assert dlq.read_identity(dlq.list_letters(r, keys)[0])[0].external_id == "crm-5"
    assert all(links.line_user(r, keys, f"crm-{i}") for i in range(8) if i != 5)
    assert r.xlen(keys.identity) == 0


def fail_then_succeed(n_failures):
    return ScriptedBraze(*[b.Retryable("HTTP 503")] * n_failures)


def test_a_failed_item_waits_its_own_backoff_and_counts_its_attempts(r, keys, make):
    braze = fail_then_succeed(1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    d, clock = make(braze, braze_retry_base_seconds=60, braze_retry_max_seconds=60)
    d.step(block_ms=10)                              # fails: one attempt, a retry time within 60 s
    [(eid, _)] = r.xrange(keys.identity)
    [st] = identity.retry_states(r, keys, [eid]).values()
    now = int(clock.now() * 1000)
    assert st.attempts == 1 and now <= st.retry_at <= now + 60_000
    identity.record_retries(r, keys, {eid: identity.RetryState(1, now + 50_000)})  # its backoff: 50 s
    clock.advance(5)                                 # the breaker lets a probe through
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    d.step(block_ms=10)                              # the probe is the new item; Braze answers
    clock.advance(1)
    d.step(block_ms=10)                              # crm-1 still waits for its own time
    assert [ext_ids(c) for c in braze.calls] == [["crm-1"], ["crm-2"]]
    clock.advance(50)
    d.step(block_ms=10)
    assert [ext_ids(c) for c in braze.calls] == [["crm-1"], ["crm-2"], ["crm-1"]]
    assert links.line_user(r, keys, "crm-1") == U1
    assert r.hlen(keys.identity_attempts) == 0 and r.zcard(keys.identity_retry) == 0  # forgotten with it


def test_items_waiting_to_retry_go_at_once_when_braze_answers_again(r, keys, settings):
    braze = fail_then_succeed(1)
    s = settings.replace(braze_retry_base_seconds=600, braze_retry_max_seconds=600)
    clock = FakeClock()
    lim = Limiter(r, keys, "identify", s.braze_identify_rate_limit)
    sender = Sender(lim, clock, auth_retry_seconds=s.braze_auth_retry_seconds, what="identify",
                    on_recovered=lambda: identity.release_retries(r, keys))   # as workers/runtime.py
    d = IdentityDeliverer(r, keys, s, braze, sender, clock, consumer="h:1:test/identity")
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    d.step(block_ms=10)
    [(eid, _)] = r.xrange(keys.identity)
    identity.record_retries(r, keys, {eid: identity.RetryState(1, int(clock.now() * 1000) + 500_000)})
    clock.advance(5)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-2", U2)
    d.step(block_ms=10)                              # the probe (crm-2) succeeds: waiting items released
    clock.advance(0.2)
    d.step(block_ms=10)
    assert [ext_ids(c) for c in braze.calls] == [["crm-1"], ["crm-2"], ["crm-1"]]
    assert r.xlen(keys.identity) == 0


def test_a_failed_early_probe_counts_no_attempt(r, keys, make):
    braze = fail_then_succeed(2)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-1", U1)
    d, clock = make(braze)
    d.step(block_ms=10)
    [(eid, _)] = r.xrange(keys.identity)
    far = int(clock.now() * 1000) + 500_000
    identity.record_retries(r, keys, {eid: identity.RetryState(1, far)})
    clock.advance(5)
    d.step(block_ms=10)                              # half-open: the waiting item probes early, fails
    assert len(braze.calls) == 2
    assert identity.retry_states(r, keys, [eid]) == {eid: identity.RetryState(1, far)}


def test_against_the_braze_sandbox_a_poisoned_item_is_split_out_and_the_rest_delivered(r, keys, rt, braze):
    """Over real HTTP: Braze refuses a whole /users/identify request for one bad alias; halving
    finds it, it is dead-lettered, and the rest of its batch reaches Braze."""
    users = ["U" + f"{i:032x}" for i in range(8)]
    rt.braze.track([{"user_alias": {"alias_name": u, "alias_label": "line_id"}, "_update_existing_only": False}
                    for u in users], [], now=rt.clock.now())
    braze.set_faults(poison_ids=[users[5]], poison_mode="400")
    for i, u in enumerate(users):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", u)
    d = IdentityDeliverer(r, keys, rt.settings, rt.braze, rt.identify_sender, rt.clock,
                          consumer="h:1:test/identity")
    d.step(block_ms=10)
    answers = [e["status"] for e in braze.requests() if e["path"] == "/users/identify"]
    assert answers == [400, 201, 400, 400, 201, 400, 201]   # halves, quarters, then the bad one alone
    assert all(braze.profile(external_id=f"crm-{i}") for i in range(8) if i != 5)
    assert braze.profile(external_id="crm-5") is None
    [letter] = dlq.list_letters(r, keys)
    assert letter.kind == "identify" and dlq.read_identity(letter)[0] == identity.Request("identify", "crm-5", users[5])
    assert r.xlen(keys.identity) == 0 and links.line_user(r, keys, "crm-0") == users[0]
