"""Delivery decisions with a scripted Braze and a fake clock (no HTTP, no sleeps)."""

import json
import threading

import pytest

from shared import dlq, forward, outbox, state
from shared.clock import FakeClock
from shared.config import RateLimit
from shared.events import make_version
from shared.limiter import Limiter
from shared.state import Change
from workers import braze as b
from workers.deliver import Deliverer, lease_ms
from workers.sending import Sender


class ScriptedBraze:
    """Answers with queued outcomes (or a function of the request); records requests."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.requests = []

    def track(self, attributes, events, *, now):
        self.requests.append((attributes, events))
        o = self.outcomes.pop(0) if self.outcomes else b.Delivered()
        return o(attributes, events) if callable(o) else o


@pytest.fixture
def clock():
    return FakeClock(1_700_000_000.0)


def make(r, keys, settings, clock, braze, **overrides):
    s = settings.replace(flush_delay_ms=0, **overrides)
    lim = Limiter(r, keys, "track", s.braze_track_rate_limit, retry_base=1, probe_max=s.braze_probe_max_seconds,
                  pause_max=s.braze_pause_max_seconds)
    sender = Sender(lim, clock, auth_retry_seconds=s.braze_auth_retry_seconds, what="/users/track",
                    on_recovered=lambda: outbox.release_retries(r, keys, now_ms=int(clock.now() * 1000)))
    return Deliverer(r, keys, s, braze, sender, clock)


def follow(r, keys, clock, *users, st="S", ts=1):
    changes = [Change(u, make_version(ts, 1, 0, i), st, None) for i, u in enumerate(users)]
    state.apply(r, keys, changes, now_ms=int(clock.now() * 1000) - 10, dedupe_ttl=60)


def test_payload_is_exactly_the_spec(r, keys, settings, clock):
    braze = ScriptedBraze()
    follow(r, keys, clock, "Uabc")
    make(r, keys, settings, clock, braze).step()
    assert braze.requests == [([{
        "user_alias": {"alias_name": "Uabc", "alias_label": "line_id"},
        "_update_existing_only": False,
        "native_line_id": "Uabc",
        "subscription_groups": [{"subscription_group_id": "sg-test", "subscription_state": "subscribed"}],
    }], [])]
    assert outbox.sizes(r, keys)["inflight_profiles"] == 0 and r.hlen(keys.batches) == 0


def test_linked_profiles_get_the_same_update(r, keys, settings, clock):
    braze = ScriptedBraze()
    r.hset(keys.links_line, "U1", "crm-1")
    follow(r, keys, clock, "U1", st="U")
    make(r, keys, settings, clock, braze).step()
    attrs = braze.requests[0][0]
    assert attrs[1] == {"external_id": "crm-1", "native_line_id": "U1", "subscription_groups": [
        {"subscription_group_id": "sg-test", "subscription_state": "unsubscribed"}]}


def test_batches_hold_at_most_the_batch_size(r, keys, settings, clock):
    braze = ScriptedBraze()
    follow(r, keys, clock, *[f"U{i}" for i in range(200)])
    d = make(r, keys, settings, clock, braze, braze_track_batch_size=75)
    while d.step() == 0:
        pass
    assert [len(a) for a, _ in braze.requests] == [75, 75, 50]


def test_named_errors_are_dead_lettered_and_the_rest_done(r, keys, settings, clock):
    braze = ScriptedBraze(b.Delivered([("attributes", 1, "invalid alias")]))
    follow(r, keys, clock, "U0", "U1", "U2")
    make(r, keys, settings, clock, braze).step()
    letters = r.xrange(keys.dlq)
    assert len(letters) == 1 and letters[0][1][b"reason"] == b"invalid alias"
    assert json.loads(letters[0][1][b"payload"])["user"] == "U1"
    assert r.hget(keys.stats, "delivered_objects") == b"2"


def test_whole_batch_400_is_bisected_to_the_bad_item(r, keys, settings, clock):
    def braze_answer(attrs, events):
        bad = any(o.get("native_line_id") == "U5" for o in attrs)
        return b.BadRequest("HTTP 400: bad") if bad else b.Delivered()
    braze = ScriptedBraze(*[braze_answer] * 50)
    follow(r, keys, clock, *[f"U{i}" for i in range(8)])
    make(r, keys, settings, clock, braze).step()
    delivered = {o["native_line_id"] for a, _ in braze.requests for o in a if not any(x.get("native_line_id") == "U5" for x in a)}
    assert delivered == {f"U{i}" for i in range(8)} - {"U5"}
    letters = r.xrange(keys.dlq)
    assert len(letters) == 1 and json.loads(letters[0][1][b"payload"])["user"] == "U5"
    assert len(braze.requests) <= 1 + 2 * 3 + 1


def test_5xx_retries_later_with_the_users_still_in_flight(r, keys, settings, clock):
    braze = ScriptedBraze(b.Retryable("HTTP 503"))
    follow(r, keys, clock, "U1")
    d = make(r, keys, settings, clock, braze)
    d.step()
    batch = json.loads(next(iter(r.hvals(keys.batches))))
    assert batch["attempts"] == 1 and r.hget(keys.outbox_inflight, "U1")
    follow(r, keys, clock, "U1", st="U", ts=2)   # a newer state waits behind the retry
    d.step()
    assert len(braze.requests) == 1              # nothing sent while the breaker is open
    clock.advance(2.0)                           # first backoff is at most 1 s
    d.step()                                     # the retry
    d.step()                                     # then the newer state
    assert [a[0]["subscription_groups"][0]["subscription_state"] for a, _ in braze.requests] == \
        ["subscribed", "subscribed", "unsubscribed"]


def test_retries_are_dead_lettered_after_the_attempt_budget(r, keys, settings, clock):
    braze = ScriptedBraze(*[b.Retryable("HTTP 500")] * 10)
    follow(r, keys, clock, "U1")
    d = make(r, keys, settings, clock, braze, braze_retry_max_attempts=3)
    for _ in range(20):
        d.step()
        clock.advance(700)
    assert len(braze.requests) == 3
    letters = r.xrange(keys.dlq)
    assert len(letters) == 1 and b"gave up after 3 attempts" in letters[0][1][b"reason"]
    assert outbox.sizes(r, keys)["inflight_profiles"] == 0


def test_429_pauses_every_worker_until_reset(r, keys, settings, clock):
    reset = clock.now() + 3
    braze = ScriptedBraze(b.RateLimited(reset))
    follow(r, keys, clock, "U1")
    d1 = make(r, keys, settings, clock, braze)
    d2 = make(r, keys, settings, clock, braze)   # another worker
    d1.step()
    follow(r, keys, clock, "U2")
    d2.step()
    assert len(braze.requests) == 1
    clock.advance(3.1)
    d2.step()
    d2.step()
    assert len(braze.requests) == 3 and r.xlen(keys.dlq) == 0


def test_auth_failure_pauses_and_drops_nothing(r, keys, settings, clock):
    braze = ScriptedBraze(b.AuthFailure("HTTP 401: Invalid API key"))
    follow(r, keys, clock, "U1")
    d = make(r, keys, settings, clock, braze, braze_auth_retry_seconds=60)
    d.step()
    clock.advance(30)
    d.step()
    assert len(braze.requests) == 1
    assert r.hget(keys.pause("track"), "kind") == b"auth"
    clock.advance(31)
    d.step()
    assert len(braze.requests) == 2 and r.xlen(keys.dlq) == 0 and r.hlen(keys.batches) == 0


class OutageBraze(ScriptedBraze):
    """Answers 500 until ``heal_at`` on the clock, then 201."""

    def __init__(self, clock, heal_at):
        super().__init__()
        self.clock, self.heal_at = clock, heal_at
        self.times = []

    def track(self, attributes, events, *, now):
        self.requests.append((attributes, events))
        self.times.append(self.clock.now())
        return b.Delivered() if self.clock.now() >= self.heal_at else b.Retryable("HTTP 500")


def run_for(d, clock, seconds):
    end = clock.now() + seconds
    while clock.now() < end:
        clock.advance(max(d.step(), 0.05))


@pytest.mark.parametrize("outage", [60.0, 3600.0])
def test_delivery_resumes_within_30_s_of_braze_answering_again(r, keys, settings, clock, outage):
    start = clock.now()
    braze = OutageBraze(clock, heal_at=start + outage)
    follow(r, keys, clock, *[f"U{i}" for i in range(300)])
    d = make(r, keys, settings, clock, braze)
    run_for(d, clock, outage + 30)
    assert outbox.sizes(r, keys)["inflight_profiles"] == 0 and r.zcard(keys.outbox_ready) == 0, "not all delivered"
    ok = [t for t, (a, _) in zip(braze.times, braze.requests) if t >= start + outage]
    assert ok and ok[0] - (start + outage) <= 30
    assert r.xlen(keys.dlq) == 0                           # the retry budget outlasts an hour
    # During the outage: one probe at a time, at least every BRAZE_PROBE_MAX_SECONDS (15 s), never a flood.
    failed = [t for t in braze.times if t < start + outage]
    assert len(failed) <= outage / 0.5
    assert all(b - a <= 15.1 for a, b in zip(failed, failed[1:])), "probes further apart than the cap"


def test_a_failed_early_probe_counts_no_attempt(r, keys, settings, clock):
    braze = OutageBraze(clock, heal_at=float("inf"))
    follow(r, keys, clock, "U1")
    d = make(r, keys, settings, clock, braze, braze_retry_max_attempts=40)
    run_for(d, clock, 3600)
    batch = json.loads(next(iter(r.hvals(keys.batches))))
    assert len(braze.requests) > 100                       # probed all hour long...
    assert batch["attempts"] < 40                          # ...but only its own backoff counted attempts
    assert r.xlen(keys.dlq) == 0


def test_a_400_for_every_item_pauses_loudly_instead_of_dead_lettering(r, keys, settings, clock, caplog):
    braze = ScriptedBraze(*[b.BadRequest("HTTP 400: Invalid subscription group")] * 500)
    follow(r, keys, clock, *[f"U{i}" for i in range(75)])
    d = make(r, keys, settings, clock, braze, braze_auth_retry_seconds=60)
    d.step()
    assert len(braze.requests) <= 12                     # not bisected into ~150 requests
    assert r.xlen(keys.dlq) == 0 and outbox.sizes(r, keys)["inflight_profiles"] == 75
    assert r.hget(keys.pause("track"), "kind") == b"config"
    assert any(rec.levelname == "CRITICAL" and "BRAZE_SUBSCRIPTION_GROUP_ID" in rec.getMessage()
               for rec in caplog.records)
    clock.advance(61)
    d.step()                                             # after the pause: bisected fully, still all rejected
    assert r.xlen(keys.dlq) == 0 and outbox.sizes(r, keys)["inflight_profiles"] == 75
    assert r.hget(keys.pause("track"), "kind") == b"config"


def test_a_few_bad_items_at_the_head_of_a_batch_are_still_dead_lettered(r, keys, settings, clock):
    bad = {"U0", "U1", "U2"}

    def braze_answer(attrs, events):
        return b.BadRequest("HTTP 400: bad") if any(o.get("native_line_id") in bad for o in attrs) else b.Delivered()
    braze = ScriptedBraze(*[braze_answer] * 200)
    follow(r, keys, clock, *[f"U{i}" for i in range(8)])
    d = make(r, keys, settings, clock, braze, braze_auth_retry_seconds=60)
    d.step()                  # three bad items first: looks like configuration, paused
    clock.advance(61)
    d.step()                  # bisected fully: the others got through, so only the bad are dead letters
    letters = {json.loads(e[1][b"payload"])["user"] for e in r.xrange(keys.dlq)}
    assert letters == bad and outbox.sizes(r, keys)["inflight_profiles"] == 0


def test_an_event_lua_cannot_read_is_sent_and_settled_like_any_other(r, keys, settings, clock):
    # "\ud800" (written by Python's json, refused by Redis's cjson) at the head of the event list.
    now = int(clock.now() * 1000)
    unreadable = {"name": "line_message_received", "properties": {"text": "\ud800"}}
    r.rpush(keys.outbox_events, forward.encode(unreadable, now))
    r.rpush(keys.outbox_events, forward.encode({"name": "line_postback", "properties": {}}, now))
    follow(r, keys, clock, "U1")

    def braze_refuses_the_lone_surrogate(attributes, events):
        bad = any("\ud800" in json.dumps(e, ensure_ascii=False, default=str) for e in events)
        return b.BadRequest("HTTP 400: invalid string") if bad else b.Delivered()

    braze = ScriptedBraze(*[braze_refuses_the_lone_surrogate] * 5)
    d = make(r, keys, settings, clock, braze)
    d.step()
    [(_, letter)] = r.xrange(keys.dlq)
    assert letter[b"kind"] == b"track_event" and "\\ud800" in letter[b"payload"].decode()
    delivered = [e["name"] for _, events in braze.requests[1:] for e in events]
    assert "line_postback" in delivered and any(a for a, _ in braze.requests[1:])
    assert r.llen(keys.outbox_events) == 0 and r.hlen(keys.batches) == 0
    follow(r, keys, clock, "U2")
    d.step()
    assert braze.requests[-1][0][0]["native_line_id"] == "U2"


def test_a_batch_lease_outlasts_one_request_twice(settings):
    from workers.deliver import lease_ms
    assert 30_000 <= lease_ms(settings) <= 31_000            # default 10 s read timeout
    assert lease_ms(settings.replace(braze_timeout_seconds=60)) > 2 * 60_000
    assert lease_ms(settings.replace(braze_timeout_seconds=1)) == 20_000  # never below the floor



def test_track_dead_letters_have_one_shape_and_old_ones_still_replay(r, keys, settings, clock):
    def braze_answer(attrs, events):
        if any(o.get("native_line_id") == "U2" for o in attrs):
            return b.BadRequest("HTTP 400: bad")
        return b.Delivered([("attributes", i, "invalid alias") for i, o in enumerate(attrs)
                            if o.get("native_line_id") == "U1"])
    braze = ScriptedBraze(*[braze_answer] * 20)
    follow(r, keys, clock, "U0", "U1", "U2")
    make(r, keys, settings, clock, braze).step()        # U1 named in a 2xx, U2 rejected alone (400)
    payloads = {json.loads(f[b"payload"])["user"]: json.loads(f[b"payload"]) for _, f in r.xrange(keys.dlq)}
    assert set(payloads) == {"U1", "U2"}
    assert all(set(p) == {"user", "objects"} and p["objects"][0]["native_line_id"] == u
               for u, p in payloads.items())
    r.xadd(keys.dlq, dlq.entry("track", "x", {"user": "U9", "object": {}}))   # written by an older release
    done = dlq.replay(r, keys, dlq.list_letters(r, keys), now_ms=int(clock.now() * 1000))
    assert done.replayed == {"track": 3} and not done.kept
    assert {u.decode() for u in r.zrange(keys.outbox_ready, 0, -1)} == {"U1", "U2", "U9"}


class StalledClock:
    """The shared fake clock, seen by a sender that stalls in its next sleep (a limiter wait, a
    stalled Redis call, GC) until the test lets it go: meanwhile the test moves time on."""

    def __init__(self, clock):
        self.clock = clock
        self.stalled, self.go = threading.Event(), threading.Event()

    def now(self):
        return self.clock.now()

    def sleep(self, seconds):
        self.stalled.set()
        assert self.go.wait(10), "the test never let the stalled sender go"


def test_a_sender_stalled_past_its_lease_never_sends_the_older_state_last(r, keys, settings, braze, clock):
    from tests.workers.conftest import API_KEY, GROUP
    s = settings.replace(braze_rest_endpoint=braze.url, braze_api_key=API_KEY, braze_subscription_group_id=GROUP,
                         flush_delay_ms=0, braze_track_rate_limit=RateLimit(1, 1.0))

    def worker(name, clk):
        lim = Limiter(r, keys, "track", s.braze_track_rate_limit, retry_base=1, probe_max=s.braze_probe_max_seconds,
                      pause_max=s.braze_pause_max_seconds)
        sender = Sender(lim, clk, auth_retry_seconds=s.braze_auth_retry_seconds, what="/users/track")
        return Deliverer(r, keys, s, b.BrazeClient(braze.url, API_KEY, timeout=s.braze_timeout_seconds),
                         sender, clk, owner=name)

    stalled = StalledClock(clock)
    slow, other = worker("worker-a", stalled), worker("worker-b", clock)
    follow(r, keys, clock, "U1", st="S", ts=1)
    Limiter(r, keys, "track", s.braze_track_rate_limit).acquire(int(clock.now() * 1000))  # A will wait 1 s...
    a = threading.Thread(target=slow.step)
    a.start()
    assert stalled.stalled.wait(10)                   # ...and stalls there, holding the batch (state S)
    clock.advance(lease_ms(s) / 1000 + 1)             # past its lease
    other.step()                                      # B takes the batch over and sends S
    follow(r, keys, clock, "U1", st="U", ts=2)        # a newer state (U) arrives
    other.step()                                      # and goes
    assert braze.subscription_state(GROUP, alias_name="U1") == "unsubscribed"
    stalled.go.set()                                  # A wakes up with the old state in hand
    a.join(10)
    assert not a.is_alive()
    other.step()
    history = [h["state"] for h in braze.profile(alias_name="U1")["history"]]
    assert history[-1] == "unsubscribed", history     # Braze ends with the newest state
    assert "subscribed" not in history[history.index("unsubscribed"):], history
    assert outbox.sizes(r, keys)["inflight_profiles"] == 0 and r.hlen(keys.batches) == 0
