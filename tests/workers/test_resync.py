"""The resync pass against the LINE sandbox (real HTTP) and a real Redis, with a fake clock."""

from __future__ import annotations

import json
import logging

import pytest
import redis

from sandboxes.line import LineSandbox, follower_id
from shared import buckets, outbox, state
from tests.support.outbox import deliver_all
from tests.support.outbox import pending as outbox_pending
from shared.clock import FakeClock, now_ms
from shared.config import Settings
from shared.errors import LineExpiredToken, LineRetryable
from shared.events import make_version
from shared.lease import Lease
from workers import resync
from workers.line_api import LineClient
from workers.resync import Resync

TOKEN = "resync-test-token"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sandbox(clock):
    sb = LineSandbox(access_token=TOKEN, followers=2500, token_ttl_seconds=3600, clock=clock).start()
    yield sb
    sb.stop()


def make(r, keys, sandbox, clock, **kw) -> Resync:
    return Resync(r, keys, LineClient(sandbox.url, TOKEN), clock, **kw)


def begin(r, keys, clock, *, mark_missing=False) -> resync.Run:
    run, created = resync.start(r, keys, reason="test", now_ms=now_ms(clock), mark_missing=mark_missing)
    assert created
    return run


def steps(rs: Resync, n: int) -> resync.Run:
    """Run ``n`` steps under a lease, then walk away without releasing it (as a crashed worker would)."""
    lease = Lease(rs.r, rs.keys.resync_lease, rs.lease_ms)
    assert lease.take()
    run = resync.load(rs.r, rs.keys)
    for _ in range(n):
        rs.step(run, lease.token)
    return run


def run_of(r, keys) -> resync.Run:
    return resync.load(r, keys)


def states(r, keys, users) -> list[str | None]:
    return [(state.get(r, keys, u) or (None, None))[1] for u in users]


def all_followers(n=2500):
    return [follower_id(i) for i in range(n)]


def test_a_first_sync_makes_its_buckets_ahead_from_lines_count(r, keys, clock):
    # LINE says how many friends there are: the state's buckets are made while nearly empty (split
    # early, cheaply) instead of as they fill. Every follower still lands where it is looked up.
    with LineSandbox(access_token=TOKEN, followers=30_000, clock=clock) as box:
        begin(r, keys, clock)
        rs = make(r, keys, box, clock, prefetch=False)
        lease = Lease(r, keys.resync_lease, rs.lease_ms)
        assert lease.take()
        run = run_of(r, keys)
        rs.step(run, lease.token)  # a step is no chunk: nobody asked LINE
        first = int(r.hget(keys.state_meta, "buckets"))
        rs.expected_followers = 30_000
        rs.step(run, lease.token)
        lease.release()
        assert int(r.hget(keys.state_meta, "buckets")) > 5 * first  # not all at once: at most ~4,096 moves a write
        assert rs.run_chunk() == "completed"
        assert state.count(r, keys) == 30_000
        assert int(r.hget(keys.state_meta, "buckets")) == -(-30_000 // buckets.LOAD)
        assert set(states(r, keys, [follower_id(i) for i in range(0, 30_000, 7)])) == {"S"}


def test_a_chunk_asks_line_for_its_count_and_goes_on_without_it(r, keys, sandbox, clock, monkeypatch):
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    assert rs.run_chunk() == "completed" and rs.expected_followers == 2500
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)

    def fails(at):
        raise LineRetryable("LINE /v2/bot/insight/followers answered HTTP 500")

    monkeypatch.setattr(rs.line, "friends_estimate", fails)
    assert rs.run_chunk() == "completed" and rs.expected_followers == 0
    assert run_of(r, keys).followers == 2500


def test_pages_to_the_end(r, keys, sandbox, clock):
    begin(r, keys, clock)
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    run = run_of(r, keys)
    assert (run.status, run.pages, run.followers, run.subscribed, run.next) == ("completed", 3, 2500, 2500, "")
    assert set(states(r, keys, all_followers())) == {"S"}
    assert outbox_pending(r, keys) == 2500  # every new profile queued for Braze once
    assert not r.exists(keys.resync_lock) and not r.exists(keys.resync_lease)
    hist = [json.loads(x) for x in r.lrange(keys.resync_history, 0, -1)]
    assert len(hist) == 1 and hist[0]["status"] == "completed" and hist[0]["followers"] == 2500
    assert sandbox.stats()["pages_served"] == 3


def test_one_run_at_a_time(r, keys, sandbox, clock):
    first = begin(r, keys, clock)
    again, created = resync.start(r, keys, reason="manual", now_ms=now_ms(clock), mark_missing=False)
    assert not created and again.id == first.id
    make(r, keys, sandbox, clock).run_chunk()
    clock.advance(60)
    _, created = resync.start(r, keys, reason="manual", now_ms=now_ms(clock), mark_missing=False)
    assert created


def test_busy_when_another_chunk_holds_the_lease(r, keys, sandbox, clock):
    begin(r, keys, clock)
    Lease(r, keys.resync_lease, 15_000).take()
    assert make(r, keys, sandbox, clock).run_chunk() == "busy"
    assert run_of(r, keys).pages == 0


def test_newer_unfollow_wins_and_older_one_loses(r, keys, sandbox, clock):
    run = begin(r, keys, clock)
    newer, older, during = follower_id(5), follower_id(6), follower_id(2100)
    arrival = now_ms(clock)
    state.apply(r, keys, [
        state.Change(newer, make_version(run.started_ms + 1, arrival, 1, 0), "U", event_id="ev-newer"),
        state.Change(older, make_version(run.started_ms - 1, arrival, 2, 0), "U", event_id="ev-older"),
    ], now_ms=arrival, dedupe_ttl=60)
    rs = make(r, keys, sandbox, clock)
    steps(rs, 1)
    # an unfollow arrives while the pass is running, for a user on a later page
    clock.advance(1)
    state.apply(r, keys, [state.Change(during, make_version(now_ms(clock), now_ms(clock), 0, 0), "U")],
                now_ms=now_ms(clock), dedupe_ttl=60)
    r.delete(keys.resync_lease)
    assert rs.run_chunk() == "completed"
    assert states(r, keys, [newer, older, during]) == ["U", "S", "U"]


def test_already_subscribed_users_are_not_sent_again(r, keys, sandbox, clock):
    users = all_followers()
    state.apply(r, keys, [state.Change(u, make_version(1, 1, 0, i), "S") for i, u in enumerate(users[:1000])],
                now_ms=1, dedupe_ttl=60)
    deliver_all(r, keys)  # delivered
    begin(r, keys, clock)
    make(r, keys, sandbox, clock).run_chunk()
    assert run_of(r, keys).subscribed == 1500
    assert outbox_pending(r, keys) == 1500 and not outbox.pending(r, keys, [users[0]])[0]


def test_forbidden_fails_once_with_the_reason(r, keys, sandbox, clock, caplog):
    sandbox.set_faults(forbidden=True)
    begin(r, keys, clock)
    with caplog.at_level(logging.ERROR, logger="workers.resync"):
        assert make(r, keys, sandbox, clock).run_chunk() == "failed"
    run = run_of(r, keys)
    assert run.status == "failed" and "verified or premium" in run.error and TOKEN not in run.error
    assert sandbox.stats()["requests"]["/v2/bot/followers/ids"] == {"403": 1}  # not retried
    assert len([rec for rec in caplog.records if rec.levelno == logging.ERROR]) == 1
    assert resync.resync_status(r, keys)["last"]["error"] == run.error
    assert not r.exists(keys.resync_lock)


def test_expired_token_starts_the_pass_over(r, keys, sandbox, clock):
    run = begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    steps(rs, 2)
    assert run_of(r, keys).pages == 2
    clock.advance(3601)  # the checkpointed `next` is now older than LINE's token TTL
    r.delete(keys.resync_lease)
    assert rs.run_chunk() == "completed"
    done = run_of(r, keys)
    assert (done.restarts, done.pages, done.followers) == (1, 3, 2500)
    assert done.started_ms == run.started_ms  # still the same run, same version
    assert sandbox.stats()["pages_served"] == 5


def test_tokens_that_always_expire_end_the_run(r, keys, sandbox, clock):
    sandbox.set_faults(expire_tokens=True)
    begin(r, keys, clock)
    assert make(r, keys, sandbox, clock, max_restarts=2).run_chunk() == "failed"
    run = run_of(r, keys)
    assert "kept expiring" in run.error and run.restarts == 2


def test_a_failing_page_is_retried_with_backoff(r, keys, sandbox, clock):
    sandbox.set_faults(fail_pages={1: 3})
    begin(r, keys, clock)
    t0 = clock.now()
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    run = run_of(r, keys)
    assert (run.pages, run.followers, run.attempts, run.error) == (3, 2500, 0, "")
    assert sandbox.stats()["requests"]["/v2/bot/followers/ids"] == {"500": 3, "200": 3}
    assert clock.now() > t0  # waited (backoff) between the tries


def test_retries_are_bounded(r, keys, sandbox, clock):
    sandbox.set_faults(fail_pages={1: 100})
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock, max_attempts=4, run_seconds=3600)
    assert rs.run_chunk() == "failed"
    run = run_of(r, keys)
    assert "kept failing (4 attempts)" in run.error and "HTTP 500" in run.error
    assert sandbox.stats()["requests"]["/v2/bot/followers/ids"]["500"] == 4


def test_retry_wait_survives_the_chunk(r, keys, sandbox, clock):
    """A chunk that runs out of time while waiting to retry leaves the wait in the checkpoint."""
    sandbox.set_faults(fail_pages={0: 1})
    begin(r, keys, clock)
    assert make(r, keys, sandbox, clock, run_seconds=0.0001, retry_base=10).run_chunk() == "more"
    run = run_of(r, keys)
    assert run.attempts == 1 and run.retry_at_ms >= now_ms(clock) and "HTTP 500" in run.error
    assert make(r, keys, sandbox, clock, retry_base=10).run_chunk() == "completed"


def known_users(r, keys, clock, run_start_ms):
    """Users known before the run who are not LINE followers, with states of different ages."""
    old = now_ms(clock) - 86_400_000
    gone = [f"Ugone{i:03d}" for i in range(30)]
    newer = "Ufollowed-after-the-run-started"
    already = "Ualready-unsubscribed"
    changes = [state.Change(u, make_version(old, old, 0, i), "S") for i, u in enumerate(gone)]
    changes += [state.Change(newer, make_version(run_start_ms + 5, run_start_ms + 5, 0, 0), "S"),
                state.Change(already, make_version(old, old, 0, 0), "U")]
    state.apply(r, keys, changes, now_ms=old, dedupe_ttl=60)
    return gone, newer, already


def test_mark_missing_is_off_by_default(r, keys, sandbox, clock):
    assert Settings().resync_mark_missing is False
    run = begin(r, keys, clock, mark_missing=Settings().resync_mark_missing)
    gone, newer, _ = known_users(r, keys, clock, run.started_ms)
    make(r, keys, sandbox, clock).run_chunk()
    assert set(states(r, keys, gone + [newer])) == {"S"}
    assert run_of(r, keys).unsubscribed == 0
    assert not r.keys(keys.resync_seen("*"))


def test_mark_missing_unsubscribes_users_absent_from_a_complete_pass(r, keys, sandbox, clock):
    run = begin(r, keys, clock, mark_missing=True)
    gone, newer, already = known_users(r, keys, clock, run.started_ms)
    deliver_all(r, keys)
    assert make(r, keys, sandbox, clock, missing_chunk=50).run_chunk() == "completed"
    assert set(states(r, keys, gone)) == {"U"}
    assert states(r, keys, [newer, already]) == ["S", "U"]  # a newer event wins; U stays U
    assert set(states(r, keys, all_followers())) == {"S"}
    done = run_of(r, keys)
    assert done.unsubscribed == 30 and done.followers == 2500
    assert outbox_pending(r, keys) == 2500 + 30
    assert not r.exists(keys.resync_seen(run.id))  # the pass's id set is gone


def test_mark_missing_does_nothing_after_an_incomplete_pass(r, keys, sandbox, clock):
    sandbox.set_faults(forbidden=True)
    run = begin(r, keys, clock, mark_missing=True)
    gone, _, _ = known_users(r, keys, clock, run.started_ms)
    assert make(r, keys, sandbox, clock).run_chunk() == "failed"
    assert set(states(r, keys, gone)) == {"S"}


def strangers(r, keys, n, at_ms):
    """``n`` users linesync holds as subscribed who are not on LINE's list."""
    users = [f"Ustranger{i:05d}" for i in range(n)]
    state.apply(r, keys, [state.Change(u, make_version(at_ms, at_ms, 0, i), "S") for i, u in enumerate(users)],
                now_ms=at_ms, dedupe_ttl=60)
    deliver_all(r, keys)  # delivered
    return users


def test_a_complete_pass_listing_no_followers_marks_nobody_missing(r, keys, sandbox, clock, caplog):
    """LINE answers an empty list (a wrong channel's token, an outage page): nobody may become unsubscribed."""
    sandbox.set_followers(0)
    known = strangers(r, keys, 40, now_ms(clock) - 86_400_000)
    run = begin(r, keys, clock, mark_missing=True)
    with caplog.at_level(logging.ERROR, logger="workers.resync"):
        assert make(r, keys, sandbox, clock).run_chunk() == "failed"
    assert set(states(r, keys, known)) == {"S"} and outbox_pending(r, keys) == 0
    done = run_of(r, keys)
    assert (done.status, done.followers, done.unsubscribed, done.missing_found) == ("failed", 0, 0, 40)
    assert done.error.startswith("mark-missing refused") and "0 followers" in done.error
    assert resync.resync_status(r, keys)["last"]["error"] == done.error  # what `linesync status` shows
    assert any("mark-missing refused" in rec.getMessage() for rec in caplog.records)
    assert not r.exists(keys.resync_lock) and not r.exists(keys.resync_seen(run.id))


def test_no_override_lets_an_empty_pass_mark_anyone(r, keys, sandbox, clock):
    sandbox.set_followers(0)
    known = strangers(r, keys, 40, now_ms(clock) - 86_400_000)
    run, _ = resync.start(r, keys, reason="test", now_ms=now_ms(clock), mark_missing=True, force_mark_missing=True)
    assert run.force_mark_missing
    assert make(r, keys, sandbox, clock).run_chunk() == "failed"
    assert set(states(r, keys, known)) == {"S"} and "0 followers" in run_of(r, keys).error


def test_an_empty_pass_with_nobody_known_completes(r, keys, sandbox, clock):
    sandbox.set_followers(0)
    begin(r, keys, clock, mark_missing=True)
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    assert run_of(r, keys).unsubscribed == 0


def test_mark_missing_refuses_a_pass_listing_less_than_the_share(r, keys, sandbox, clock):
    known = strangers(r, keys, 3000, now_ms(clock) - 86_400_000)  # 2,500 listed of 5,500 known: 45 %
    begin(r, keys, clock, mark_missing=True)
    assert make(r, keys, sandbox, clock, missing_chunk=700).run_chunk() == "failed"
    done = run_of(r, keys)
    assert done.error.startswith("mark-missing refused") and "45.5%" in done.error
    assert "LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE=0.5" in done.error and "--force-mark-missing" in done.error
    assert (done.followers, done.missing_found, done.unsubscribed) == (2500, 3000, 0)
    assert set(states(r, keys, known)) == {"S"}
    assert set(states(r, keys, all_followers())) == {"S"}  # the pass itself did its work
    assert outbox_pending(r, keys) == 2500  # new followers only: no unsubscribe queued


def test_a_lower_share_lets_the_same_pass_mark_them(r, keys, sandbox, clock):
    known = strangers(r, keys, 3000, now_ms(clock) - 86_400_000)
    begin(r, keys, clock, mark_missing=True)
    assert make(r, keys, sandbox, clock, mark_missing_min_share=0.4).run_chunk() == "completed"
    assert set(states(r, keys, known)) == {"U"} and run_of(r, keys).unsubscribed == 3000


def test_the_override_marks_them_and_is_recorded_on_the_run(r, keys, sandbox, clock):
    known = strangers(r, keys, 3000, now_ms(clock) - 86_400_000)
    resync.start(r, keys, reason="test", now_ms=now_ms(clock), mark_missing=True, force_mark_missing=True)
    assert make(r, keys, sandbox, clock, missing_chunk=700).run_chunk() == "completed"
    assert set(states(r, keys, known)) == {"U"}
    done = run_of(r, keys)
    assert (done.unsubscribed, done.missing_found, done.force_mark_missing) == (3000, 3000, True)
    assert resync.resync_status(r, keys)["last"]["force_mark_missing"] is True


def test_the_share_setting(monkeypatch):
    from shared.config import load_settings
    from shared.errors import ConfigError
    assert load_settings({}, dotenv=False).resync_mark_missing_min_share == 0.5
    assert load_settings({"LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE": "0.8"},
                         dotenv=False).resync_mark_missing_min_share == 0.8
    with pytest.raises(ConfigError, match="LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE"):
        load_settings({"LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE": "1.5"}, dotenv=False)


class _Crash(Exception):
    pass


def test_a_crash_mid_page_neither_skips_nor_double_counts(r, keys, sandbox, clock, monkeypatch):
    run = begin(r, keys, clock, mark_missing=True)
    rs = make(r, keys, sandbox, clock)
    steps(rs, 1)  # page 0 committed
    real = resync._Tx.execute
    calls = []

    def dies_before_exec(self, *a, **kw):
        calls.append(1)
        raise _Crash("worker killed before EXEC")

    monkeypatch.setattr(resync._Tx, "execute", dies_before_exec)
    r.delete(keys.resync_lease)
    with pytest.raises(_Crash):
        steps(rs, 1)  # page 1 fetched, then the process "dies"
    monkeypatch.setattr(resync._Tx, "execute", real)
    assert calls and run_of(r, keys).pages == 1  # checkpoint still after page 0
    r.delete(keys.resync_lease)  # the dead worker's lease lapses
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    done = run_of(r, keys)
    assert (done.pages, done.followers) == (3, 2500)
    assert sandbox.stats()["pages_served"] == 4  # page 1 fetched twice, counted once
    assert set(states(r, keys, all_followers())) == {"S"}
    assert done.started_ms == run.started_ms


def test_a_crash_between_pages_resumes_from_the_checkpoint(r, keys, sandbox, clock):
    rs = make(r, keys, sandbox, clock)
    begin(r, keys, clock)
    steps(rs, 2)
    r.delete(keys.resync_lease)
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    done = run_of(r, keys)
    assert (done.pages, done.followers) == (3, 2500)
    assert sandbox.stats()["pages_served"] == 3


def test_a_chunk_that_lost_its_lease_cannot_move_the_checkpoint(r, keys, sandbox, clock):
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    run = steps(rs, 1)
    r.set(keys.resync_lease, "someone-else")  # our lease lapsed and another chunk took over
    with pytest.raises(resync._Lost):
        rs.step(run, "our-old-token")
    assert run_of(r, keys).pages == 1


def test_a_failed_command_in_the_page_transaction_rolls_the_checkpoint_back(r, keys, sandbox, clock):
    run = begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    lease = Lease(r, keys.resync_lease, 15_000)
    lease.take()
    r.set(keys.state, "not a hash")  # HGET in apply_events fails with WRONGTYPE inside EXEC
    with pytest.raises(redis.ResponseError):
        rs.apply_page(run, lease.token, ["Ux"], "tok")
    after = run_of(r, keys)
    assert (after.pages, after.followers, after.next) == (0, 0, "")


def test_one_transaction_per_page(r, keys, sandbox, clock, monkeypatch):
    sandbox.set_followers(10_500)
    begin(r, keys, clock)
    sent = []
    real = redis.connection.Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return real(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    # 11 pages: one write per page, plus a handful for lease, load and finish
    assert len(sent) <= 11 + 6, len(sent)


def test_needs_wake_and_queued_marker(r, keys, sandbox, clock):
    assert resync.needs_wake(r, keys) is None
    run = begin(r, keys, clock)
    assert resync.needs_wake(r, keys) == run.id
    assert resync.needs_wake(r, keys) is None  # already queued
    resync.clear_queued(r, keys)
    Lease(r, keys.resync_lease, 15_000).take()
    assert resync.needs_wake(r, keys) is None  # a live chunk


def test_first_start_is_claimed_once(r, keys, clock):
    assert resync.claim_first_start(r, keys)
    assert not resync.claim_first_start(r, keys)
    r.flushdb()
    begin(r, keys, clock)  # a run happened before the first kick
    assert not resync.claim_first_start(r, keys)


def test_no_line_client_fails_with_the_reason(r, keys, clock):
    begin(r, keys, clock)
    rs = Resync(r, keys, None, clock, line_unavailable="LINE_CHANNEL_ACCESS_TOKEN is not set on the workers")
    assert rs.run_chunk() == "failed"
    assert run_of(r, keys).error == "LINE_CHANNEL_ACCESS_TOKEN is not set on the workers"


def test_status_current_and_last(r, keys, sandbox, clock):
    assert resync.resync_status(r, keys) == {"current": None, "last": None}
    run = begin(r, keys, clock)
    steps(make(r, keys, sandbox, clock), 1)
    cur = resync.resync_status(r, keys, now=now_ms(clock) + 1000)
    assert cur["current"]["id"] == run.id and cur["current"]["pages"] == 1 and cur["last"] is None
    assert cur["current"]["next"] is True  # the token itself is not shown
    json.dumps(cur)
    r.delete(keys.resync_lease)
    make(r, keys, sandbox, clock).run_chunk()
    done = resync.resync_status(r, keys)
    assert done["current"] is None and done["last"]["status"] == "completed" and done["last"]["pages"] == 3


def test_cancel(r, keys, sandbox, clock):
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    run = steps(rs, 1)
    assert resync.cancel(r, keys, now_ms=now_ms(clock))
    assert run_of(r, keys).status == "failed"
    with pytest.raises(resync._Lost):
        rs.step(run, r.get(keys.resync_lease).decode())
    assert run_of(r, keys).pages == 1


def test_progress_line():
    from linesync.commands.resync import progress_line
    run = resync.Run(id="r1", started_ms=0, pages=10, followers=10_000)
    line = progress_line(run, 2000, None)
    assert "pages 10" in line and "followers 10,000" in line and "5,000/s" in line and "elapsed 0:00:02" in line
    assert "ETA ~0:00:18" in progress_line(run, 2000, 100_000)


def test_kick_resumes_a_dead_chunk_and_queues_the_first_start_once(r, keys, settings, clock, monkeypatch):
    from workers import resync_tasks
    from workers.runtime import build
    sent = []
    monkeypatch.setattr(resync_tasks.chunk, "apply_async", lambda args=(), **kw: sent.append(("chunk", args)))
    monkeypatch.setattr(resync_tasks.start, "apply_async", lambda args=(), **kw: sent.append(("start", kw)))
    rt = build(settings.replace(resync_on_start=True))
    assert resync_tasks.wake(rt) == ["first-start"]
    assert resync_tasks.wake(rt) == []  # once per deployment, however many kicks and replicas
    run = begin(r, keys, clock)  # a run whose chunk died: no lease, nothing queued
    assert resync_tasks.wake(rt) == [f"resume:{run.id}"]
    assert sent == [("start", {"kwargs": {"reason": "first-start"}}), ("chunk", (run.id,))]


def test_first_start_waits_for_a_token(r, keys, settings, monkeypatch):
    from workers import resync_tasks
    from workers.runtime import build
    monkeypatch.setattr(resync_tasks.start, "apply_async", lambda *a, **kw: None)
    assert resync_tasks.wake(build(settings.replace(resync_on_start=True, line_channel_access_token=None))) == []
    assert not r.exists(keys.resync_first)


# ---------------------------------------------------------------- cancels and stale chunks: nothing half-applied

def to_missing_phase(r, keys, sandbox, clock, **kw) -> tuple[Resync, resync.Run, str, list[str]]:
    """A mark-missing run whose pass is complete (3 pages), under our lease, about to mark missing users."""
    run = begin(r, keys, clock, mark_missing=True)
    gone, _, _ = known_users(r, keys, clock, run.started_ms)
    rs = make(r, keys, sandbox, clock, missing_chunk=10_000, **kw)  # one HSCAN step covers every user
    run = steps(rs, 3)
    assert run.phase == resync.MISSING and r.scard(keys.resync_seen(run.id)) == 2500
    return rs, run, r.get(keys.resync_lease).decode(), gone


@pytest.mark.parametrize("when", ["before the step", "before the seen-set read", "after the seen-set read"])
def test_a_cancel_during_mark_missing_unsubscribes_nobody(r, keys, sandbox, clock, monkeypatch, when):
    """The operator cancels while a mark-missing chunk is between its reads and its write."""
    rs, run, token, gone = to_missing_phase(r, keys, sandbox, clock)
    if when == "before the step":  # the chunk still holds the run it loaded
        assert resync.cancel(r, keys, now_ms=now_ms(clock))
    real = r.smismember

    def smismember(*a, **kw):
        if when == "before the seen-set read":
            assert resync.cancel(r, keys, now_ms=now_ms(clock))  # deletes the seen set: every id looks missing
            return real(*a, **kw)
        flags = real(*a, **kw)
        assert resync.cancel(r, keys, now_ms=now_ms(clock))
        return flags

    monkeypatch.setattr(r, "smismember", smismember)
    deliver_all(r, keys)
    with pytest.raises(resync._Lost):
        rs.step(run, token)
    assert set(states(r, keys, all_followers())) == {"S"}  # no real follower unsubscribed
    assert set(states(r, keys, gone)) == {"S"}  # nor anyone else: the run had ended
    assert outbox_pending(r, keys) == 0
    done = run_of(r, keys)
    assert (done.status, done.phase, done.unsubscribed) == ("failed", resync.MISSING, 0)
    assert r.llen(keys.resync_history) == 1 and not r.exists(keys.resync_seen(run.id))


def test_a_mark_missing_chunk_that_lost_its_lease_writes_nothing(r, keys, sandbox, clock, monkeypatch):
    rs, run, token, gone = to_missing_phase(r, keys, sandbox, clock)
    real = r.smismember

    def smismember(*a, **kw):
        r.set(keys.resync_lease, "someone-else")  # our lease lapsed and another chunk took over
        return real(*a, **kw)

    monkeypatch.setattr(r, "smismember", smismember)
    with pytest.raises(resync._Lost):
        rs.step(run, token)
    assert set(states(r, keys, gone)) == {"S"}  # the new holder does this chunk, once
    assert run_of(r, keys).seq == run.seq


def test_mark_missing_without_its_seen_set_fails_instead_of_unsubscribing_everyone(r, keys, sandbox, clock):
    rs, run, token, gone = to_missing_phase(r, keys, sandbox, clock)
    r.delete(keys.resync_seen(run.id))  # expired, or deleted by hand
    rs.step(run, token)
    done = run_of(r, keys)
    assert done.status == "failed" and "seen set" in done.error and done.unsubscribed == 0
    assert set(states(r, keys, all_followers() + gone)) == {"S"}


def test_a_cancel_during_a_page_leaves_no_seen_set_behind(r, keys, sandbox, clock):
    """The page's subscribes may land (true, and versioned at the run's start); the run's own keys do not."""
    begin(r, keys, clock, mark_missing=True)
    rs = make(r, keys, sandbox, clock)
    run = steps(rs, 1)
    token = r.get(keys.resync_lease).decode()
    real = rs.line.followers_ids

    def fetch_then_cancel(*a, **kw):
        page = real(*a, **kw)
        assert resync.cancel(r, keys, now_ms=now_ms(clock))
        return page

    rs.line.followers_ids = fetch_then_cancel
    with pytest.raises(resync._Lost):
        rs.step(run, token)
    done = run_of(r, keys)
    assert (done.status, done.pages, done.followers) == ("failed", 1, 1000)
    assert not r.exists(keys.resync_seen(run.id))  # not recreated after the cancel deleted it
    assert r.llen(keys.resync_history) == 1 and not r.exists(keys.resync_lock)


def test_a_stale_chunk_cannot_empty_the_seen_set_of_the_new_holder(r, keys, sandbox, clock):
    """A chunk that lost its lease and then sees LINE's paging token expire must not restart the pass."""
    begin(r, keys, clock, mark_missing=True)
    rs = make(r, keys, sandbox, clock)
    run = steps(rs, 1)
    stale = r.get(keys.resync_lease).decode()
    r.set(keys.resync_lease, "someone-else")  # another chunk took over and carries on
    with pytest.raises(resync._Lost):
        rs._restart(run, stale, LineExpiredToken("expired"))
    assert r.scard(keys.resync_seen(run.id)) == 1000
    assert run_of(r, keys).pages == 1


def test_a_cancel_during_the_finish_ends_the_run_once(r, keys, sandbox, clock, monkeypatch):
    begin(r, keys, clock)
    rs = make(r, keys, sandbox, clock)
    run = steps(rs, 3)
    assert run.phase == resync.FINISH
    token = r.get(keys.resync_lease).decode()
    assert resync.cancel(r, keys, now_ms=now_ms(clock))
    with pytest.raises(resync._Lost):
        rs.step(run, token)
    done = run_of(r, keys)
    assert (done.status, done.error) == ("failed", "cancelled by operator")
    assert [json.loads(x)["status"] for x in r.lrange(keys.resync_history, 0, -1)] == ["failed"]


def test_the_sandbox_answers_pages_at_a_set_pace(r, keys, sandbox, clock):
    """bench/resync's LINE pace: ``page_time_ms`` is a fault like the others; a pass under it completes."""
    sandbox.set_faults(page_time_ms=5)
    assert sandbox.faults()["page_time_ms"] == 5.0 and sandbox.faults()["latency_ms"] == 0.0
    begin(r, keys, clock)
    assert make(r, keys, sandbox, clock).run_chunk() == "completed"
    assert run_of(r, keys).followers == 2500
    sandbox.clear_faults()
    assert sandbox.faults()["page_time_ms"] == 0.0
