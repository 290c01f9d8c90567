"""`linesync doctor` end to end: a real Redis, the LINE and Braze sandboxes and a real ingress, over HTTP.

Workers and beat are not started (two cores, and they are not what is being
checked): a worker process is registered the way the engine does it (its
lease and heartbeat entry), beat's lock is taken the way redbeat takes it,
and a real resync pass runs against the LINE sandbox.
"""

from __future__ import annotations

import json
import os
import threading

import pytest
import requests
from click.testing import CliRunner
from werkzeug.serving import make_server

from ingress import create_app
from linesync import cli as cli_module
from linesync.cli import cli
from sandboxes import BrazeSandbox, LineSandbox
from shared.clock import SystemClock
from shared.config import Settings
from shared.lease import Lease
from workers import resync
from workers.line_api import LineClient

SECRET = "e2e-channel-secret"
LINE_TOKEN = "e2e-line-token"
BRAZE_KEY = "e2e-braze-key"
GROUP = "0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab"
ENV_PREFIXES = ("LINESYNC_", "BRAZE_", "LINE_", "RESYNC_", "INGRESS_")


class Chain:
    def __init__(self, r, keys, ingress_url, line, braze, env):
        self.r, self.keys, self.ingress_url, self.line, self.braze, self.env = r, keys, ingress_url, line, braze, env

    def doctor(self, *args: str, **env: str):
        res = CliRunner().invoke(cli, ["doctor", *args], env={**self.env, **env})
        failing = {line.split()[1].rstrip(":") for line in res.output.splitlines()
                   if line.startswith(("FAIL ", "WARN "))}
        return res, failing


@pytest.fixture
def ingress_url(redis_url, r):
    app = create_app(Settings(redis_url=redis_url, line_channel_secret=SECRET))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    t.join(5)


@pytest.fixture
def redis_with_maxmemory(r):
    """The session Redis has AOF and noeviction; give it a maxmemory too, as production should."""
    before = r.config_get("maxmemory")["maxmemory"], r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory", 1024 ** 3)
    yield r
    r.config_set("maxmemory", before[0])
    r.config_set("maxmemory-policy", before[1])


@pytest.fixture
def chain(redis_with_maxmemory, redis_url, keys, ingress_url, tmp_path, monkeypatch):
    r = redis_with_maxmemory
    monkeypatch.chdir(tmp_path)  # no ./.env
    for k in list(os.environ):
        if k.startswith(ENV_PREFIXES) or k == "REDIS_URL":
            monkeypatch.delenv(k)
    line = LineSandbox(access_token=LINE_TOKEN, channel_secret=SECRET, followers=5,
                       webhook_endpoint=ingress_url + "/line/events").start()
    braze = BrazeSandbox(api_key=BRAZE_KEY).start()
    env = {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
           "LINE_API_BASE_URL": line.url, "BRAZE_REST_ENDPOINT": braze.url, "BRAZE_API_KEY": BRAZE_KEY,
           "BRAZE_SUBSCRIPTION_GROUP_ID": GROUP, "LINESYNC_PUBLIC_URL": ingress_url}
    # A live worker process, as workers/engine.py registers one.
    Lease(r, keys.worker("w1@host"), 15_000).take()
    r.zadd(keys.workers, {"w1@host": int(r.time()[0] * 1000)})
    # A running beat, as redbeat holds its lock.
    assert r.lock(keys.redbeat_lock, timeout=30).acquire(blocking=False)
    # A completed resync.
    resync.start(r, keys, reason="test", now_ms=int(r.time()[0] * 1000), mark_missing=False)
    assert resync.Resync(r, keys, LineClient(line.url, LINE_TOKEN), SystemClock(), prefetch=False).run_chunk() \
        == "completed"
    yield Chain(r, keys, ingress_url, line, braze, env)
    line.stop()
    braze.stop()


def test_all_is_well(chain):
    res, failing = chain.doctor("--send-test")
    assert res.exit_code == 0, res.output
    assert failing == set()
    assert res.output.strip().splitlines()[-1] == "doctor: all 16 checks passed"
    assert chain.line.stats()["requests"]["/v2/bot/channel/webhook/test"] == {"200": 1}
    assert chain.braze.profiles() == []  # the key check changed no profile


def test_json_lists_every_check(chain):
    res, _ = chain.doctor("--json", "--send-test")
    doc = json.loads(res.output)
    assert res.exit_code == 0 and doc["ok"] is True and doc["exit_code"] == 0
    names = [c["name"] for c in doc["checks"]]
    assert names == ["redis.connection", "redis.version", "redis.eviction", "redis.cluster", "redis.aof", "redis.memory",
                     "line.token", "line.webhook_url", "line.webhook_active", "line.test_delivery",
                     "braze.api_key", "braze.state_mode", "braze.subscription_group", "workers.alive", "beat.alive", "resync.recent"]
    assert all(c["ok"] is True and set(c) >= {"name", "ok", "detail", "fix"} for c in doc["checks"])
    assert LINE_TOKEN not in res.output and BRAZE_KEY not in res.output and SECRET not in res.output


def test_wrong_braze_key(chain):
    res, failing = chain.doctor(BRAZE_API_KEY="not-the-key")
    assert res.exit_code == 1
    assert failing == {"braze.api_key"}
    assert "FAIL  braze.api_key: Braze refused BRAZE_API_KEY (401: Invalid API key) -> fix: check the key" in res.output
    assert "not-the-key" not in res.output


def test_line_has_no_webhook_url(chain):
    chain.line.set_faults(webhook_unset=True)
    res, failing = chain.doctor()
    assert res.exit_code == 1 and failing == {"line.webhook_url"}
    assert f"LINE has no webhook URL on file: LINE sends no events -> fix: set it to {chain.ingress_url}/line/events" \
        in res.output


def test_line_sends_elsewhere(chain):
    r = requests.put(chain.line.url + "/v2/bot/channel/webhook/endpoint",
                     json={"endpoint": "https://old.example.com/callback"},
                     headers={"Authorization": f"Bearer {LINE_TOKEN}"})
    assert r.status_code == 200
    res, failing = chain.doctor()
    assert res.exit_code == 1 and failing == {"line.webhook_url"}
    assert (f"LINE sends webhooks to https://old.example.com/callback, not to {chain.ingress_url}/line/events"
            in res.output)


def test_webhook_switched_off(chain):
    chain.line.set_faults(webhook_inactive=True)
    res, failing = chain.doctor()
    assert res.exit_code == 1 and failing == {"line.webhook_active"}
    assert "Use webhook is off" in res.output


def test_channel_secret_mismatch_shows_with_send_test(chain):
    chain.line.channel_secret = "the-channel's-real-secret"  # the ingress still has SECRET
    res, failing = chain.doctor()
    assert res.exit_code == 0  # nothing else can see it
    res, failing = chain.doctor("--send-test")
    assert res.exit_code == 1 and failing == {"line.test_delivery"}
    assert "refused LINE's signature (401)" in res.output and "LINE_CHANNEL_SECRET" in res.output


def test_an_evicting_redis(chain):
    chain.r.config_set("maxmemory-policy", "allkeys-lru")
    res, failing = chain.doctor()
    assert res.exit_code == 1 and failing == {"redis.eviction"}
    assert "FAIL  redis.eviction: maxmemory-policy is allkeys-lru" in res.output


def test_warnings_only_exit_3_and_the_exit_status_reaches_the_shell(chain, monkeypatch):
    chain.r.config_set("maxmemory", 0)
    for k, v in chain.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("sys.argv", ["linesync", "doctor"])
    with pytest.raises(SystemExit) as exc:
        cli_module.main()
    assert exc.value.code == 3
