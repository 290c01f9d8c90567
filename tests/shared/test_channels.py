"""The channels file (shared/channels.py): parsing, checks, keys per channel and workspace."""

from __future__ import annotations

import pytest

from shared import channels
from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.keys import Keys

JP = """
[channels.jp]
line_channel_secret_env = "LINE_SECRET_JP"
line_channel_access_token_env = "LINE_TOKEN_JP"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key_env = "BRAZE_KEY_JP"
braze_subscription_group_id = "sg-jp"
braze_track_rate_limit = "100/1s"
resync_schedule = "every 6h"
resync_mark_missing_unsubscribed = true
linesync_forward_events = ["postback", "message"]
"""
TW = """
[channels.tw]
line_channel_secret = "tw-secret"
line_channel_secret_previous_env = "LINE_SECRET_TW_OLD"
line_channel_access_token = "tw-token"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key = "key-tw"
braze_subscription_group_id = "sg-tw"
"""
ENV = {"LINE_SECRET_JP": "jp-secret", "LINE_TOKEN_JP": "jp-token", "BRAZE_KEY_JP": "key-jp",
       "LINE_SECRET_TW_OLD": "tw-old", "REDIS_URL": "redis://localhost:6379/0"}


def parse(text: str, env=ENV, **settings) -> tuple[channels.Channel, ...]:
    return channels.parse(text, Settings(**settings), env)


def problem(text: str, env=ENV) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text, env)
    assert e.value.variable == "LINESYNC_CHANNELS_FILE"
    assert "\n" not in str(e.value)
    return e.value.problem


def test_two_channels_with_env_secrets_and_own_settings():
    jp, tw = parse(JP + TW)
    assert (jp.name, tw.name) == ("jp", "tw")
    assert jp.settings.line_channel_secret == "jp-secret"
    assert jp.settings.braze_api_key == "key-jp"
    assert jp.settings.braze_subscription_group_id == "sg-jp"
    assert str(jp.settings.braze_track_rate_limit) == "100/1s"
    assert jp.settings.resync_schedule == "every 6h" and jp.settings.resync_mark_missing
    assert jp.settings.forward_event_types == ("postback", "message")
    assert tw.settings.resync_schedule == "0 3 * * *" and not tw.settings.resync_mark_missing  # the defaults
    assert jp.secrets == (("current", b"jp-secret"),)
    assert tw.secrets == (("current", b"tw-secret"), ("previous", b"tw-old"))


def test_keys_per_channel_and_per_workspace():
    jp, tw = parse(JP + TW)
    assert jp.keys.state == "{linesync}:ch:jp:state"
    assert tw.keys.webhooks == "{linesync}:ch:tw:webhooks"
    assert jp.keys.seen("e1") == "{linesync}:ch:jp:seen:e1"
    assert jp.workspace != tw.workspace  # same endpoint, other API key
    assert jp.workspace_keys.limit("track").startswith("{linesync}:ws:")
    assert "key-jp" not in jp.workspace_keys.limit("track")


def test_same_endpoint_and_key_share_a_workspace():
    a, b = parse(JP + JP.replace("channels.jp", "channels.jp2").replace("sg-jp", "sg-jp2"))
    assert a.workspace == b.workspace and a.workspace_keys == b.workspace_keys
    assert a.keys != b.keys


def test_default_channel_keeps_todays_keys_and_its_workspace_too():
    default_tbl = TW.replace("channels.tw", "channels.default")
    d, same_ws, other = parse(default_tbl + TW.replace("channels.tw", "channels.tw2") + JP)
    assert d.keys == Keys() and d.workspace_keys == Keys() and d.workspace == ""
    assert same_ws.workspace == "" and same_ws.keys == Keys("linesync", "ch:tw2")
    assert other.workspace != ""


def test_without_the_file_one_default_channel_from_the_variables():
    s = load_settings({"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_SECRET_PREVIOUS": "old",
                       "BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com", "BRAZE_API_KEY": "k"}, dotenv=False)
    (only,) = s.channels()
    assert only.name == "default" and only.settings is s
    assert only.keys == Keys() and only.workspace_keys == Keys()
    assert only.secrets == (("current", b"s"), ("previous", b"old"))


def test_load_settings_reads_the_file_once(tmp_path):
    path = tmp_path / "channels.toml"
    path.write_text(JP + TW)
    s = load_settings({**ENV, "LINESYNC_CHANNELS_FILE": str(path)}, dotenv=False)
    assert [c.name for c in s.channels()] == ["jp", "tw"]
    s.require("redis_url", "line_channel_secret", "braze_api_key")  # per channel, checked in the file
    assert s.channel("tw").settings.braze_api_key == "key-tw" and s.channel("nope") is None


def test_unreadable_file_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings({"LINESYNC_CHANNELS_FILE": str(tmp_path / "missing.toml")}, dotenv=False)
    assert e.value.variable == "LINESYNC_CHANNELS_FILE"


def test_missing_field_names_channel_and_field():
    assert problem(TW.replace('braze_api_key = "key-tw"\n', "")) == (
        "channel tw: braze_api_key (or braze_api_key_env) is required but not set")


def test_env_key_naming_an_unset_variable():
    p = problem(JP, env={k: v for k, v in ENV.items() if k != "BRAZE_KEY_JP"})
    assert p == "channel jp: braze_api_key_env names BRAZE_KEY_JP, which is not set"


def test_duplicate_channel():
    assert problem(TW + TW) == "channel tw: declared twice (channel names must be unique)"


def test_malformed_toml_does_not_quote_secrets():
    p = problem('[channels.tw]\nline_channel_secret = "very-secret\n')
    assert p.startswith("is not valid TOML") and "very-secret" not in p


def test_unknown_key_and_bad_value_and_bad_name():
    assert problem(TW.replace("braze_api_key =", "braze_apikey =")) == "channel tw: unknown key 'braze_apikey'"
    p = problem(TW + 'braze_track_rate_limit = "lots"\n')
    assert p.startswith("channel tw: braze_track_rate_limit is malformed")
    assert "channel 'TW'" in problem(TW.replace("channels.tw", "channels.TW"))
    assert problem("") == "names no channel (expected [channels.<name>] tables)"


def test_plain_http_to_another_host_refused_per_channel():
    p = problem(TW.replace("https://rest.iad-01.braze.com", "http://braze.example.com"))
    assert p.startswith("channel tw: braze_rest_endpoint is a plain http:// URL")


def test_workspace_settings_must_agree():
    other = JP.replace("channels.jp", "channels.jp2").replace('"100/1s"', '"200/1s"')
    assert "differs from channel jp's" in problem(JP + other)


def test_attributes_mode_needs_no_group():
    text = TW.replace('braze_subscription_group_id = "sg-tw"\n', 'braze_state_mode = "attributes"\n')
    (tw,) = parse(text)
    assert tw.settings.braze_state_mode == "attributes"
