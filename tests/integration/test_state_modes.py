"""BRAZE_STATE_MODE end to end: a real worker process, Redis, the LINE and Braze sandboxes over HTTP.

Each mode goes through the same story — a linked profile, follows, a stale
unfollow, an unfollow, a resync that finds a new follower and marks a missing
one unfollowed — and the Braze profiles must end with exactly that mode's fields.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandboxes.line import LineSandbox, follower_id
from shared import links
from shared.clock import redis_now
from shared.payload import iso_ms
from tests.integration.conftest import GROUP, body, follow_event
from tests.support.procs import ROOT, celery_worker, wait_until
from workers import resync

pytestmark = pytest.mark.integration

LINE_TOKEN = "modes-line-token"
A, B, C = follower_id(1), follower_id(2), follower_id(3)


@pytest.fixture
def line_sb():
    sb = LineSandbox(access_token=LINE_TOKEN, followers=[]).start()
    yield sb
    sb.stop()


def fields(profile: dict | None) -> tuple[dict, dict]:
    """(subscription groups, custom attributes) of a sandbox profile."""
    assert profile is not None
    return profile["subscription_groups"], profile["custom_attributes"]


def expected(mode: str, word: str, at_ms: int) -> tuple[dict, dict]:
    groups = {GROUP: {"followed": "subscribed", "unfollowed": "unsubscribed"}[word]}
    attrs = {"line_follow_state": word, "line_follow_state_at": iso_ms(at_ms)}
    return {"subscription_group": (groups, {}), "attributes": ({}, attrs), "both": (groups, attrs)}[mode]


@pytest.mark.parametrize("mode", ["subscription_group", "attributes", "both"])
def test_follow_unfollow_link_and_resync_in_each_mode(stack, line_sb, mode):
    r, braze = stack.r, stack.braze
    settings = dict(BRAZE_STATE_MODE=mode, LINE_API_BASE_URL=line_sb.url, LINE_CHANNEL_ACCESS_TOKEN=LINE_TOKEN,
                    RESYNC_MARK_MISSING_UNSUBSCRIBED="true")
    env = stack.env(**settings)
    if mode == "attributes":
        del env["BRAZE_SUBSCRIPTION_GROUP_ID"]  # attributes mode starts with no subscription group at all
    stack.workers.append(celery_worker(env, concurrency=4))
    assert f"BRAZE_STATE_MODE={mode}: the follow state is written to the" in stack.workers[0].output()
    now = int(redis_now(r) * 1000)
    t0, t1, t2 = now - 30_000, now - 20_000, now - 10_000
    assert links.link(r, stack.keys, "crm-a", A, now_ms=now)

    def alias(u):
        return braze.profile(alias_name=u)

    # A follows; B follows then unfollows; a stale unfollow of A (older than its follow) loses.
    stack.post(body(follow_event(A, t1), follow_event(B, t1), follow_event(B, t2, "unfollow"),
                    follow_event(A, t0, "unfollow")))
    wait_until(lambda: alias(B) is not None and fields(alias(B)) == expected(mode, "unfollowed", t2)
               and braze.profile(external_id="crm-a") is not None, timeout=20, what="B unfollowed, crm-a",
               on_fail=stack.logs)
    assert fields(alias(A)) == expected(mode, "followed", t1)
    linked = braze.profile(external_id="crm-a")
    assert fields(linked) == expected(mode, "followed", t1) and linked["native_line_id"] == A
    assert alias(A)["native_line_id"] == A
    if mode != "subscription_group":  # Braze stores the ISO 8601 string as a time
        assert alias(A)["custom_attribute_types"]["line_follow_state_at"] == "time"

    # The LINE account now lists A and C: C is new, B is missing (already unfollowed), so is nobody else.
    # Then A unfollows for real: every linked profile follows the newest state.
    line_sb.set_followers([A, C])
    res = subprocess.run([sys.executable, "-m", "linesync.cli", "resync", "--wait"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr + stack.logs()
    started = resync.load(r, stack.keys).started_ms
    wait_until(lambda: alias(C) is not None and fields(alias(C)) == expected(mode, "followed", started),
               timeout=20, what="C followed by the resync", on_fail=stack.logs)
    assert fields(alias(B)) == expected(mode, "unfollowed", t2)  # unchanged: nothing re-sent

    # A leaves without linesync seeing the unfollow (webhook lost): the next resync marks it missing.
    line_sb.set_followers([C])
    res = subprocess.run([sys.executable, "-m", "linesync.cli", "resync", "--wait"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr + stack.logs()
    missing_run = resync.load(r, stack.keys).started_ms
    assert missing_run >= started
    want = expected(mode, "unfollowed", missing_run)
    wait_until(lambda: fields(alias(A)) == want and fields(braze.profile(external_id="crm-a")) == want,
               timeout=20, what="A marked missing, crm-a too", on_fail=stack.logs)
    assert fields(alias(C)) == expected(mode, "followed", started)
