"""A worker serving several channels (workers/lanes.py): one lane per channel, Braze parts per workspace."""

from __future__ import annotations

import json

from shared import channels, state, webhook_queue
from shared.keys import Keys
from shared.limiter import TRACK
from tests.support.procs import wait_until
from tests.workers.conftest import API_KEY
from workers import lanes
from workers.celery_app import resync_schedule
from workers.channel_schedule import resync_entries
from workers.engine import Engine
from workers.runtime import build

TABLE = """
[channels.{name}]
line_channel_secret = "s"
line_channel_access_token = "t"
braze_rest_endpoint = "{url}"
braze_api_key = "{key}"
braze_subscription_group_id = "sg-{name}"
resync_schedule = "{schedule}"
"""


def multi(settings, braze, names=("jp", "th"), other_key=("tw",)):
    text = "".join(TABLE.format(name=n, url=braze.url, key=API_KEY if n not in other_key else "other-key",
                                schedule="every 2h" if n == "jp" else "0 3 * * *")
                   for n in (*names, *other_key))
    base = settings.replace(channels_file="c.toml", flush_delay_ms=50, delivery_concurrency=4)
    return base.replace(channel_table=channels.parse(text, base, {}))


def follow_body(users, ts):
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": ts, "webhookEventId": f"E{u}{ts}", "mode": "active",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


def test_lanes_share_braze_parts_within_a_workspace_only(r, settings, braze):
    rt = build(multi(settings, braze))
    ls = {ln.name: ln.rt for ln in lanes.of(rt)}
    assert list(ls) == ["jp", "th", "tw"]
    assert ls["jp"].track_limiter is ls["th"].track_limiter and ls["jp"].track_sender is ls["th"].track_sender
    assert ls["tw"].track_limiter is not ls["jp"].track_limiter
    assert ls["jp"].keys == Keys("linesync", "ch:jp") and rt.keys == Keys("linesync")
    assert ls["tw"].track_limiter.keys.pause(TRACK) != ls["jp"].track_limiter.keys.pause(TRACK)
    assert ls["jp"].settings.braze_subscription_group_id == "sg-jp"
    assert lanes.lane(rt, "th") is ls["th"]


def test_one_engine_serves_every_channel_into_its_own_group(r, settings, braze):
    rt = build(multi(settings, braze, other_key=()))
    ls = lanes.of(rt)
    same_user = "U" + "c" * 32  # one LINE provider: the same user id in both channels
    for ln, ts in zip(ls, (1000, 2000)):
        webhook_queue.ensure_group(r, ln.channel.keys)
        webhook_queue.enqueue(r, ln.channel.keys, follow_body([same_user], ts))
    engine = Engine(rt, lanes=[(ln.name, ln.rt, ()) for ln in ls], concurrency=4).start()
    try:
        wait_until(lambda: all(braze.subscription_state(f"sg-{n}", alias_name=same_user, alias_label="line_id")
                               == "subscribed" for n in ("jp", "th")), timeout=30)
        names = {t.name for t in engine._threads}
        assert {"linesync-jp:consume-0", "linesync-th:consume-0", "linesync-jp:identity"} <= names
        assert sum(n.startswith("linesync-jp:deliver-") for n in names) == 2  # 4 // 2 channels
    finally:
        engine.stop()
    assert state.get(r, Keys("linesync", "ch:jp"), same_user) and state.get(r, Keys("linesync", "ch:th"), same_user)
    assert state.count(r, Keys()) == 0


def test_beat_schedules_one_resync_per_channel(settings, braze):
    entries = resync_entries(multi(settings, braze), resync_schedule)
    assert set(entries) == {"resync-followers-jp", "resync-followers-th", "resync-followers-tw"}
    assert entries["resync-followers-jp"]["kwargs"] == {"reason": "schedule", "channel": "jp"}
    assert entries["resync-followers-jp"]["schedule"].total_seconds() == 7200
    single = resync_entries(settings, resync_schedule)
    assert list(single) == ["resync-followers"] and single["resync-followers"]["kwargs"] == {"reason": "schedule"}


def test_channel_metrics_per_channel_and_workspace(r, settings, braze):
    from prometheus_client import CollectorRegistry, generate_latest

    from workers.channel_metrics import ChannelCollector

    s = multi(settings, braze)
    jp, th, tw = s.channels()
    r.xadd(jp.keys.dlq, {"kind": "track"})
    r.zadd(th.keys.outbox_ready, {"U1": 1})
    r.hset(tw.workspace_keys.pause(TRACK), mapping={"until": 2**50, "reason": "auth", "kind": "auth"})
    reg = CollectorRegistry()
    reg.register(ChannelCollector(lambda: r, s.channels()))
    text = generate_latest(reg).decode()
    assert 'linesync_channel_dead_letters{channel="jp"} 1.0' in text
    assert 'linesync_channel_dead_letters{channel="th"} 0.0' in text
    assert 'linesync_channel_outbox_pending_profiles{channel="th"} 1.0' in text
    assert f'linesync_workspace_braze_paused{{limiter="{TRACK}",workspace="{tw.workspace_label}"}} 1.0' in text
    assert f'linesync_workspace_braze_paused{{limiter="{TRACK}",workspace="{jp.workspace_label}"}} 0.0' in text


def test_each_lane_records_its_bodies_destination(r, settings, braze):
    rt = build(multi(settings, braze, other_key=()))
    ls = lanes.of(rt)
    for ln in ls:
        webhook_queue.ensure_group(r, ln.channel.keys)
        raw = follow_body(["U" + "d" * 32], 1000).replace(b'"Ubot"', f'"Ubot-{ln.name}"'.encode())
        webhook_queue.enqueue(r, ln.channel.keys, raw)
    engine = Engine(rt, lanes=[(ln.name, ln.rt, ()) for ln in ls], concurrency=4).start()
    try:
        wait_until(lambda: all(r.get(ln.channel.keys.destination) == f"Ubot-{ln.name}".encode() for ln in ls),
                   timeout=30)
    finally:
        engine.stop()
    assert not r.exists(Keys().destination)


def test_a_task_without_channel_goes_to_the_default_channel_or_fails_loudly(r, settings, braze):
    import pytest

    rt = build(multi(settings, braze))
    with pytest.raises(KeyError):
        lanes.lane(rt, None)  # no channel `default` in this file
    with pytest.raises(KeyError):
        lanes.lane(rt, "br")
    single = build(settings.replace(braze_rest_endpoint=braze.url))
    assert lanes.lane(single, None) is single and lanes.lane(single, "default") is single
