"""Several channels end to end: real ingress over HTTP, real Redis, a real Celery worker, two Braze sandboxes.

Two channels in two Braze workspaces: each channel's follows reach its own workspace with its
own subscription group, and a 401 from one workspace pauses that workspace only.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import pytest

from sandboxes.braze import BrazeSandbox
from shared import channels, state
from shared.config import Settings
from shared.embedded_redis import free_port
from shared.limiter import TRACK
from shared.signature import sign
from tests.integration.conftest import body, follow_event
from tests.support.procs import Proc, base_env, celery_worker, wait_until

pytestmark = pytest.mark.integration

CHANNELS = """
[channels.jp]
line_channel_secret_env = "SECRET_JP"
line_channel_access_token = "token-jp"
braze_rest_endpoint = "{jp_url}"
braze_api_key = "key-jp"
braze_subscription_group_id = "sg-jp"

[channels.tw]
line_channel_secret_env = "SECRET_TW"
line_channel_access_token = "token-tw"
braze_rest_endpoint = "{tw_url}"
braze_api_key = "key-tw"
braze_subscription_group_id = "sg-tw"
"""
SECRETS = {"jp": "secret-jp", "tw": "secret-tw"}


@pytest.fixture
def workspaces():
    jp, tw = BrazeSandbox(api_key="key-jp").start(), BrazeSandbox(api_key="key-tw").start()
    yield {"jp": jp, "tw": tw}
    jp.stop()
    tw.stop()


@pytest.fixture
def deployment(r, redis_url, workspaces, tmp_path):
    path = tmp_path / "channels.toml"
    path.write_text(CHANNELS.format(jp_url=workspaces["jp"].url, tw_url=workspaces["tw"].url))
    env = base_env(REDIS_URL=redis_url, LINESYNC_CHANNELS_FILE=str(path), SECRET_JP=SECRETS["jp"],
                   SECRET_TW=SECRETS["tw"], BRAZE_FLUSH_DELAY_MS="100", RESYNC_ON_START="false",
                   BRAZE_AUTH_RETRY_SECONDS="30", LINESYNC_ADMIN_BIND=f"127.0.0.1:{free_port()}")
    port = free_port()
    procs = [Proc("ingress", [sys.executable, "-m", "linesync.cli", "ingress", "--bind", f"127.0.0.1:{port}",
                              "--workers", "1"], env)]
    procs.append(celery_worker(env, concurrency=4))
    wait_until(lambda: _post(port, "jp", body(), SECRETS["jp"]) == 200, timeout=30, what="the ingress",
               on_fail=lambda: procs[0].output())
    table = channels.parse(path.read_text(), Settings(), {"SECRET_JP": "x", "SECRET_TW": "y"})
    yield port, {c.name: c for c in table}, lambda: "\n\n".join(p.output()[-3000:] for p in procs)
    for p in procs:
        p.kill()


def _post(port: int, channel: str, raw: bytes, secret: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/line/events/{channel}", data=raw, method="POST",
                                 headers={"X-Line-Signature": sign(secret, raw), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_each_channel_reaches_its_own_workspace_and_a_401_pauses_only_its_own(r, workspaces, deployment):
    port, chans, logs = deployment
    jp_users = [f"Ujp{i:029x}" for i in range(30)]
    tw_users = [f"Utw{i:029x}" for i in range(30)]
    for i in range(0, 30, 5):
        assert _post(port, "jp", body(*(follow_event(u, 1000 + i) for u in jp_users[i:i + 5])), SECRETS["jp"]) == 200
        assert _post(port, "tw", body(*(follow_event(u, 1000 + i) for u in tw_users[i:i + 5])), SECRETS["tw"]) == 200
    assert _post(port, "tw", body(follow_event(jp_users[0], 1)), SECRETS["jp"]) == 401  # another channel's secret
    assert _post(port, "br", body(follow_event(jp_users[0], 1)), SECRETS["jp"]) == 404

    def braze_state(ch, user):
        return workspaces[ch].subscription_state(f"sg-{ch}", alias_name=user, alias_label="line_id")

    wait_until(lambda: all(braze_state("jp", u) == "subscribed" for u in jp_users)
               and all(braze_state("tw", u) == "subscribed" for u in tw_users), timeout=60, what="both channels",
               on_fail=logs)
    assert workspaces["jp"].stats()["objects_received"] == 30 and workspaces["tw"].stats()["objects_received"] == 30
    assert all(braze_state("jp", u) is None for u in tw_users[:5])  # nothing crossed over
    assert state.count(r, chans["jp"].keys) == 30 and state.count(r, chans["tw"].keys) == 30

    # Workspace tw's key is revoked: tw pauses, jp goes on.
    workspaces["tw"].configure(api_key="rotated")
    late_tw, late_jp = "Utwlate" + "0" * 25, "Ujplate" + "0" * 25
    assert _post(port, "tw", body(follow_event(late_tw, 5000)), SECRETS["tw"]) == 200
    tw_pause = chans["tw"].workspace_keys.pause(TRACK)
    wait_until(lambda: r.exists(tw_pause), timeout=30, what="workspace tw paused", on_fail=logs)
    assert _post(port, "jp", body(follow_event(late_jp, 5000)), SECRETS["jp"]) == 200
    wait_until(lambda: braze_state("jp", late_jp) == "subscribed", timeout=30, what="jp still delivered", on_fail=logs)
    assert not r.exists(chans["jp"].workspace_keys.pause(TRACK))
    assert braze_state("tw", late_tw) is None
    assert workspaces["tw"].stats()["requests"]["/users/track"].get("401", 0) >= 1
