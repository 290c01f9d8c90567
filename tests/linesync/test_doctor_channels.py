"""doctor with several channels: per-channel LINE, Braze and resync checks, named <channel>:<check>."""

from linesync.doctor import diagnose
from shared import channels
from shared.check import FAIL, OK, SKIP
from tests.linesync.test_doctor_run import GROUP, PUBLIC, down, good_http, settings, statuses

FILE = f"""
[channels.default]
line_channel_secret = "s0"
line_channel_access_token = "t0"
braze_rest_endpoint = "https://b.example"
braze_api_key = "k0"
braze_subscription_group_id = "{GROUP}"

[channels.jp]
line_channel_secret = "s1"
line_channel_access_token = "t1"
braze_rest_endpoint = "https://b.example"
braze_api_key = "k1"
braze_subscription_group_id = "{GROUP}"
"""


def multi(**kw):
    base = settings(channels_file="c.toml", **kw)
    return base.replace(channel_table=channels.parse(FILE, base, {}))


def test_each_channel_checked_with_its_own_webhook_url():
    s = statuses(diagnose(multi(), http=good_http(), connect_redis=down))
    assert s["default:line.token"] == OK and s["jp:line.token"] == OK
    assert s["default:line.webhook_url"] == OK  # LINE has PUBLIC/line/events on file
    assert s["jp:line.webhook_url"] == FAIL  # jp's should be PUBLIC/line/events/jp
    assert s["jp:braze.api_key"] == OK and s["jp:resync.recent"] == SKIP
    assert "line.token" not in s


def test_channel_option_checks_only_that_channel():
    checks = diagnose(multi(), http=good_http(), connect_redis=down, channel="jp")
    assert {c.name.split(":")[0] for c in checks if ":" in c.name} == {"jp"}
    assert any(f"{PUBLIC}/line/events/jp" in c.detail for c in checks if c.name == "jp:line.webhook_url")


def test_unknown_channel_is_a_failed_check():
    (c,) = diagnose(multi(), http=good_http(), connect_redis=down, channel="br")
    assert c.status == FAIL and "br" in c.detail


def test_each_channel_has_its_resync_check_on_real_redis(redis_url, r):
    s = statuses(diagnose(multi(redis_url=redis_url), http=good_http()))
    assert "default:resync.recent" in s and "jp:resync.recent" in s and "workers.alive" in s


def test_destination_matches_the_channels_bot(redis_url, r):
    from shared.keys import Keys
    from tests.linesync.doctor_fakes import reply

    http = good_http()
    http.routes[("GET", "/v2/bot/info")] = reply(200, {"basicId": "@abc", "userId": "Ubot-jp"})
    s = statuses(diagnose(multi(redis_url=redis_url), http=http))
    assert s["jp:line.destination"] == SKIP  # no webhook applied yet
    r.set(Keys("linesync", "ch:jp").destination, "Ubot-jp")
    r.set(Keys("linesync").destination, "Ubot-other")  # the default channel's bodies went to another bot
    checks = {c.name: c for c in diagnose(multi(redis_url=redis_url), http=http)}
    assert checks["jp:line.destination"].status == OK
    assert checks["default:line.destination"].status == FAIL
    assert "Ubot-other" in checks["default:line.destination"].detail
