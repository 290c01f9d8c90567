"""A worker moves the layout before compact state at start: a real `celery -A workers worker` process."""

from __future__ import annotations

import hashlib

import pytest

from shared import dedupe, migrate, state
from shared.events import make_version
from tests.integration.conftest import body, follow_event
from tests.support.procs import wait_until

pytestmark = pytest.mark.integration


def test_a_starting_worker_moves_old_state_and_marks_then_applies_and_delivers(stack):
    r, keys = stack.r, stack.keys
    old_users = ["U" + hashlib.md5(str(i).encode()).hexdigest() for i in range(1500)]
    p = r.pipeline(transaction=False)
    for i, u in enumerate(old_users):
        p.hset(keys.state, u, make_version(1_600_000_000_000, 1_600_000_000_000, 0, i % 10) + "S")
    p.execute()
    event_id = "01JOLDEVENT000000000000000"
    r.set(keys.seen_prefix + ":" + event_id, "1", ex=3600)
    stack.start_worker()
    wait_until(lambda: not migrate.pending(r, keys), timeout=60, what="the migration at start", on_fail=stack.logs)
    assert not r.exists(keys.state) and state.count(r, keys) == 1500
    assert state.get(r, keys, old_users[7]) == (make_version(1_600_000_000_000, 1_600_000_000_000, 0, 7), "S")
    now_ms = int(r.time()[0]) * 1000
    assert dedupe.remembered(r, keys, event_id, now_ms=now_ms, ttl_seconds=7 * 24 * 3600)
    # A redelivery of the remembered event changes nothing; a new unfollow of a moved user reaches Braze.
    ts = 1_700_000_000_000
    stack.post(body(follow_event(old_users[1], ts, "unfollow", event_id)))
    stack.post(body(follow_event(old_users[2], ts, "unfollow")))
    wait_until(lambda: stack.state_of(old_users[2]) == "unsubscribed", timeout=60, what="the unfollow in Braze",
               on_fail=stack.logs)
    assert state.get(r, keys, old_users[1])[1] == "S" and state.get(r, keys, old_users[2])[1] == "U"
