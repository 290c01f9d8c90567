"""Operator commands with several channels: --channel NAME, or every channel (real Redis)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from linesync.cli import cli
from shared import channels, dlq, links
from shared.keys import Keys
from shared.limiter import TRACK

FILE = """
[channels.jp]
line_channel_secret = "s1"
line_channel_access_token = "t1"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key = "k1"
braze_subscription_group_id = "sg1"

[channels.tw]
line_channel_secret = "s2"
line_channel_access_token = "t2"
braze_rest_endpoint = "https://rest.iad-02.braze.com"
braze_api_key = "k2"
braze_subscription_group_id = "sg2"
"""
JP, TW = Keys("linesync", "ch:jp"), Keys("linesync", "ch:tw")
U1 = "U" + "a" * 32


@pytest.fixture
def run(redis_url, tmp_path, monkeypatch):
    path = tmp_path / "channels.toml"
    path.write_text(FILE)
    monkeypatch.chdir(tmp_path)  # no .env from the worktree

    def _run(*args, channels_file: bool = True):
        env = {"REDIS_URL": redis_url, "LINESYNC_CHANNELS_FILE": str(path) if channels_file else ""}
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return _run


def test_status_covers_every_channel_with_its_workspaces_limits(r, run):
    r.xadd(JP.webhooks, {"body": b"{}"})
    r.hset(TW.state, U1, "1S")
    ws_tw = Keys("linesync").for_workspace(channels.workspace_of("https://rest.iad-02.braze.com", "k2"))
    r.hset(ws_tw.pause(TRACK), mapping={"until": 2**50, "reason": "auth", "kind": "auth"})
    res = run("status", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)["channels"]
    assert set(s) == {"jp", "tw"}
    assert s["jp"]["queue"]["stream_length"] == 1 and s["tw"]["queue"]["stream_length"] == 0
    assert s["tw"]["profiles_known"] == 1 and s["jp"]["profiles_known"] == 0
    assert s["tw"]["limits"][TRACK]["paused"] and not s["jp"]["limits"][TRACK]["paused"]
    one = json.loads(run("status", "--json", "--channel", "jp").output)["channels"]
    assert set(one) == {"jp"}
    text = run("status").output
    assert "== channel jp" in text and "== channel tw" in text


def test_unknown_channel_is_a_usage_error(run):
    res = run("status", "--channel", "br")
    assert res.exit_code == 2 and "no channel 'br' (channels: jp, tw)" in res.output


def test_dlq_list_per_channel(r, run):
    r.xadd(JP.dlq, dlq.entry("track", "jp-reason", {"user": U1, "object": {}}))
    r.xadd(TW.dlq, dlq.entry("track", "tw-reason", {"user": U1, "object": {}}))
    out = run("dlq", "list").output
    assert "== channel jp" in out and "jp-reason" in out and "tw-reason" in out
    rows = json.loads(run("dlq", "list", "--json", "--channel", "tw").output)
    assert [(x["channel"], x["reason"]) for x in rows] == [("tw", "tw-reason")]
    assert "purged 1" in run("dlq", "purge", "--yes", "--channel", "jp").output
    assert r.xlen(JP.dlq) == 0 and r.xlen(TW.dlq) == 1


def test_link_needs_a_channel_when_there_are_several(r, run):
    res = run("link", "crm-1", U1)
    assert res.exit_code == 2 and "--channel" in res.output
    assert run("link", "crm-1", U1, "--channel", "jp").exit_code == 0
    assert links.line_user(r, JP, "crm-1") == U1
    assert not r.exists(Keys().links_ext) and not r.exists(TW.links_ext)


def test_single_channel_deployment_unchanged_and_default_accepted(r, run):
    r.xadd(Keys().webhooks, {"body": b"{}"})
    s = json.loads(run("status", "--json", channels_file=False).output)
    assert "channels" not in s and s["queue"]["stream_length"] == 1
    assert run("status", "--json", "--channel", "default", channels_file=False).exit_code == 0
    assert run("link", "crm-1", U1, channels_file=False).exit_code == 0
    assert r.hget(Keys().links_ext, "crm-1") == U1.encode()


def test_status_reports_a_removed_channels_leftover_work(r, run):
    old = Keys("linesync", "ch:br")
    r.xadd(old.webhooks, {"body": b"{}"})
    r.zadd(old.outbox_ready, {U1: 1})
    r.xadd(Keys("linesync", "ch:empty").webhooks, {"body": b"{}"})
    r.xtrim(Keys("linesync", "ch:empty").webhooks, maxlen=0)  # a removed channel with nothing left
    s = json.loads(run("status", "--json").output)
    assert s["removed_channels"] == {"br": {"webhooks": 1, "profiles_waiting": 1, "open_batches": 0,
                                            "identity": 0, "dead_letters": 0}}
    assert "channel br is not in LINESYNC_CHANNELS_FILE but has work left" in run("status").output
    assert r.xlen(old.webhooks) == 1  # reported, not touched


def test_pauses_per_workspace(r, run):
    ws_tw = Keys("linesync").for_workspace(channels.workspace_of("https://rest.iad-02.braze.com", "k2"))
    r.hset(ws_tw.pause(TRACK), mapping={"until": 2**50, "reason": "auth", "kind": "auth"})
    doc = json.loads(run("pauses", "--json").output)
    assert {tuple(w["channels"]) for w in doc.values()} == {("jp",), ("tw",)}
    tw = next(w for w in doc.values() if w["channels"] == ["tw"])
    jp = next(w for w in doc.values() if w["channels"] == ["jp"])
    assert tw[TRACK]["paused"] and not jp[TRACK]["paused"]
    assert run("pauses", "--clear", "--channel", "tw").exit_code == 0
    assert not r.exists(ws_tw.pause(TRACK))


def test_send_test_webhook_needs_a_channel_when_there_are_several(run):
    res = run("send-test-webhook")
    assert res.exit_code == 2 and "--channel" in res.output


def test_config_lists_each_channel_without_secrets(run):
    res = run("config", "--json")
    doc = json.loads(res.output)
    assert doc["channels"]["jp"]["braze_api_key"] == "<set>" and doc["channels"]["jp"]["webhook_path"] == \
        "/line/events/jp"
    assert not any(f'"{v}"' in res.output for v in ("s1", "t1", "k1", "s2", "t2", "k2"))  # no secret value
    text = run("config").output
    assert "channel tw: webhook_path=/line/events/tw" in text
    assert "channels" not in json.loads(run("config", "--json", channels_file=False).output)


def test_state_per_channel(r, run):
    from shared import state

    assert "channel jp" in run("state", U1).output
    doc = json.loads(run("state", U1, "--json", "--channel", "tw").output)
    assert list(doc["channels"]) == ["tw"] and doc["channels"]["tw"]["known"] is False
    assert state.count(r, TW) == 0
