"""`linesync up` with a channels file: a stand-in per channel, a completed copy of the file.

The plan is checked as a pure function; one test runs `linesync up` for real (embedded Redis,
the sandboxes, ingress, worker, beat) and sends each channel a follow over HTTP.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from linesync.up import channels as up_channels
from shared import channels
from shared.config import Settings
from shared.embedded_redis import free_port
from shared.signature import sign
from tests.integration.conftest import body, follow_event
from tests.support.procs import Proc, base_env, wait_until

FILE = """
[channels.jp]
resync_schedule = "every 6h"

[channels.tw]
line_channel_secret_env = "TW_SECRET"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key_env = "TW_BRAZE_KEY"
braze_subscription_group_id = "sg-tw"
"""


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = shlex.split(v)[0] if v else ""
    return out


def ports():
    n = iter(range(40000, 40100))
    return lambda: next(n)


def test_plan_gives_each_channel_what_its_table_lacks(tmp_path):
    src = tmp_path / "channels.toml"
    src.write_text(FILE)
    env = {"LINESYNC_CHANNELS_FILE": str(src), "TW_SECRET": "tw-secret", "TW_BRAZE_KEY": "real-key"}
    p = up_channels.plan(env, tmp_path, public_url="http://127.0.0.1:8080", python="py", free_port=ports())
    jp, tw = p.channels
    assert (jp.braze_port, jp.line_port) == (40000, 40001) and tw.braze_port is None and tw.line_port == 40002
    assert jp.webhook_url == "http://127.0.0.1:8080/line/events/jp"
    doc = tomllib.loads(p.text)["channels"]
    assert doc["jp"]["braze_rest_endpoint"] == "http://127.0.0.1:40000" and doc["jp"]["resync_schedule"] == "every 6h"
    assert doc["tw"]["braze_api_key_env"] == "TW_BRAZE_KEY" and doc["tw"]["line_api_base_url"] == "http://127.0.0.1:40002"
    assert [s.name for s in p.specs] == ["braze-jp", "line-jp", "line-tw"]
    line_tw = p.specs[2]
    assert line_tw.env["LINE_CHANNEL_SECRET"] == "tw-secret" and "tw-secret" not in " ".join(line_tw.argv)
    assert (tmp_path / "channel_secret-jp").read_text().strip() == doc["jp"]["line_channel_secret"]
    # The completed copy passes the same checks as any channels file.
    table = channels.parse(p.text, Settings(), env)
    assert [c.name for c in table] == ["jp", "tw"] and table[0].workspace != table[1].workspace


@pytest.mark.integration
def test_up_serves_every_channel_with_its_own_stand_ins(tmp_path):
    src = tmp_path / "channels.toml"
    src.write_text("[channels.jp]\n\n[channels.tw]\n")
    data = tmp_path / "data"
    port = free_port()
    env = base_env(LINESYNC_CHANNELS_FILE=str(src), LINESYNC_WORKER_METRICS_PORT="0",
                   LINESYNC_BEAT_METRICS_PORT="0", RESYNC_ON_START="false")
    up = Proc("up", [sys.executable, "-m", "linesync.cli", "up", "--bind", f"127.0.0.1:{port}",
                     "--admin-bind", f"127.0.0.1:{free_port()}", "--data-dir", str(data), "--ingress-workers", "1",
                     "--concurrency", "4"], {**env, "PWD": str(tmp_path)})
    try:
        up.wait_for_line("linesync is up.", timeout=90)
        assert "channel jp: webhook http://127.0.0.1:" in up.output()
        doc = tomllib.loads((data / "channels.toml").read_text())["channels"]
        for name in ("jp", "tw"):
            user = f"U{name}" + "0" * 30
            raw = body(follow_event(user, 1000))
            secret = doc[name]["line_channel_secret"]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/line/events/{name}", data=raw, method="POST",
                                         headers={"X-Line-Signature": sign(secret, raw)})
            assert urllib.request.urlopen(req, timeout=5).status == 200
        for name in ("jp", "tw"):
            braze = doc[name]["braze_rest_endpoint"]
            group = doc[name]["braze_subscription_group_id"]

            def subscribed(braze=braze, group=group, name=name):
                with urllib.request.urlopen(f"{braze}/_sandbox/profiles", timeout=5) as resp:
                    profiles = json.loads(resp.read())["profiles"]
                return [p.get("subscription_groups", {}).get(group) for p in profiles] == ["subscribed"]

            wait_until(subscribed, timeout=60, what=f"{name}'s follow in its own Braze sandbox",
                       on_fail=up.output)
        # A resync of one channel pages that channel's LINE sandbox into that channel's workspace only.
        cli_env = {**base_env(), **_env_file(data / "env")}
        res = subprocess.run([sys.executable, "-m", "linesync.cli", "resync", "--channel", "jp", "--wait",
                              "--start-timeout", "60"], env=cli_env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr + up.output()
        assert "Resync completed: 100 followers" in res.stdout
        with urllib.request.urlopen(f"{doc['jp']['braze_rest_endpoint']}/_sandbox/profiles", timeout=5) as resp:
            assert len(json.loads(resp.read())["profiles"]) == 101
        with urllib.request.urlopen(f"{doc['tw']['braze_rest_endpoint']}/_sandbox/profiles", timeout=5) as resp:
            assert len(json.loads(resp.read())["profiles"]) == 1
    finally:
        if up.proc.poll() is None:
            os.kill(up.proc.pid, signal.SIGINT)
            try:
                up.proc.wait(30)
            except Exception:
                up.kill()
