"""BRAZE_STATE_MODE end to end: a real worker process, Redis, the LINE and Braze sandboxes over HTTP.

Each mode goes through the same story — a linked profile, follows, a stale
unfollow, an unfollow, a resync that finds a new follower and marks a missing
one unfollowed — and the Braze profiles must end with exactly that mode's fields.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

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


# ---- docs/braze-without-line-channel.md, followed against the sandboxes ----------------------------

GUIDE = ROOT / "docs" / "braze-without-line-channel.md"
PUSH_URL = "https://api.line.me/v2/bot/message/push"
_GUARD = re.compile(r'^\{% if \$\{(\w+)\} == blank %\}\{% abort_message\("[^"]*"\) %\}\{% endif %\}\n')
_TAG = re.compile(r"\{\{\$\{(\w+)\}\}\}")


def guide_block(name: str) -> str:
    """The code block under ``<!-- checked: name -->`` in the guide."""
    text = GUIDE.read_text()
    m = re.search(rf"<!-- checked: {name} -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert m, f"the guide lost its {name} block"
    return m.group(1)


def render(template: str, profile: dict) -> str | None:
    """The guide's Liquid (its abort guard and ``{{${attr}}}`` tags) for one profile; None = aborted."""
    def attr(name):
        return profile.get(name) if name in profile else profile["custom_attributes"].get(name)

    guard = _GUARD.match(template)
    if guard:
        if not attr(guard.group(1)):
            return None
        template = template[guard.end():]
    out = _TAG.sub(lambda m: attr(m.group(1)), template)
    assert "{{" not in out and "{%" not in out, f"Liquid this test does not know: {out}"
    return out


def test_the_guide_without_the_line_channel(stack, line_sb):
    """Attributes mode with forwarded follows; segment, trigger and push exactly as the guide says."""
    r, braze = stack.r, stack.braze
    D = follower_id(4)
    line_sb.set_followers([A, C, D])
    text = GUIDE.read_text()
    for setting in ("BRAZE_STATE_MODE=attributes", "LINESYNC_FORWARD_EVENTS=follow", PUSH_URL):
        assert setting in text
    env = stack.env(BRAZE_STATE_MODE="attributes", LINESYNC_FORWARD_EVENTS="follow")
    del env["BRAZE_SUBSCRIPTION_GROUP_ID"]
    stack.workers.append(celery_worker(env, concurrency=4))
    now = int(redis_now(r) * 1000)
    assert links.link(r, stack.keys, "crm-c", C, now_ms=now)  # linked only: two profiles for C
    stack.post(body(follow_event(A, now - 9000), follow_event(B, now - 9000), follow_event(B, now - 8000, "unfollow"),
                    follow_event(C, now - 9000), follow_event(D, now - 9000)))
    wait_until(lambda: braze.profile(alias_name=A) is not None, timeout=20, what="A's profile", on_fail=stack.logs)
    res = subprocess.run([sys.executable, "-m", "linesync.cli", "identify", "crm-a", A], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr

    def ready():
        a, b, d = (braze.profile(alias_name=u) for u in (A, B, D))
        return (a is not None and a["external_id"] == "crm-a" and b is not None and d is not None
                and b["custom_attributes"].get("line_follow_state") == "unfollowed"
                and braze.profile(external_id="crm-c") is not None
                and sum(len(p["events"]) for p in braze.profiles()) == 4)
    wait_until(ready, timeout=30, what="profiles, identify and forwarded follows", on_fail=stack.logs)
    profiles = braze.profiles()
    assert all(p["subscription_groups"] == {} for p in profiles)

    # §3: the segment line_follow_state equals followed; C is on two profiles (link without identify).
    segment = [p for p in profiles if p["custom_attributes"].get("line_follow_state") == "followed"]
    assert sorted(p["native_line_id"] for p in segment) == sorted([A, C, C, D])
    assert braze.profile(alias_name=A)["braze_id"] == braze.profile(external_id="crm-a")["braze_id"]  # identify: one

    # §4: action-based on line_follow, audience filter line_follow_state equals followed: B is left out.
    triggered = [p for p in profiles if any(e["name"] == "line_follow" for e in p["events"])
                 and p["custom_attributes"].get("line_follow_state") == "followed"]
    assert sorted(p["native_line_id"] for p in triggered) == sorted([A, C, D])

    # §2: each send is the guide's webhook, rendered for the profile, posted to LINE's push API.
    headers = dict(line.split(": ", 1) for line in guide_block("push-headers").splitlines())
    headers["Authorization"] = headers["Authorization"].replace("<your channel access token>", LINE_TOKEN)
    template = guide_block("push-body")
    for p in triggered:
        rendered = render(template, p)
        reply = requests.post(PUSH_URL.replace("https://api.line.me", line_sb.url), data=rendered.encode(),
                              headers=headers, timeout=10)
        assert reply.status_code == 200, (reply.status_code, reply.text, rendered)
    pushes = line_sb.pushes()
    assert sorted(p["to"] for p in pushes) == sorted([A, C, D]) and all(p["follower"] for p in pushes)
    assert pushes[0]["messages"][0]["type"] == "text"
    assert render(template, {"custom_attributes": {}, "native_line_id": None}) is None  # the abort guard
