"""The status page: rendered from a real Redis, and (where Chromium is installed) in a real browser."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import pytest

from ingress import status_page
from shared import dlq, identity, outbox, rates, state
from shared.events import make_version
from shared.config import RateLimit
from shared.limiter import Limiter
from shared.state import Change
from shared.clock import redis_now

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
U1 = "U" + "a" * 32


def identity_queue(r, keys):
    """4 identify/merge items queued, 2 of them held by a worker, 1 waiting to retry; a merge dead letter."""
    for i in range(3):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", U1)
    identity.enqueue(r, keys, identity.MERGE, "crm-m", U1)
    r.xgroup_create(keys.identity, "workers", id="0")
    got = r.xreadgroup("workers", "h:1:a/identity", {keys.identity: ">"}, count=2)[0][1]
    identity.record_retries(r, keys, {got[0][0]: identity.RetryState(1, 10**13)})
    kind, payload = dlq.identity_letter(identity.Request(identity.MERGE, "crm-x", U1))
    r.xadd(keys.dlq, dlq.entry(kind, "HTTP 400", payload))


def busy_redis(r, keys):
    """A pipeline with something in every part of the page."""
    now = redis_now(r)
    state.apply(r, keys, [Change(f"U{i:032x}", make_version(1, 1, 0, 0), "S", None) for i in range(7)],
                now_ms=int(now * 1000), dedupe_ttl=60)
    outbox.claim(r, keys, now_ms=int(now * 1000), max_objects=3, flush_delay_ms=0)
    p = r.pipeline(transaction=False)
    for i in range(1, 360):  # an hour of traffic, a busy spell 20 minutes ago
        t = now - 10 * i
        burst = 1234 if i == 120 else 600 + 300 * math.sin(i / 25) + (400 if 110 < i < 130 else 0)
        p.set(rates.key(keys, rates.DELIVERED, t), int(burst * 10), ex=rates.TTL)
        p.set(rates.key(keys, rates.WEBHOOKS, t), int(burst * 10 / 4), ex=rates.TTL)
    p.execute()
    Limiter(r, keys, "track", RateLimit(10, 1.0)).pause(int(now * 1000) + 600_000, "HTTP 401: Invalid API key",
                                                        "auth", now_ms=int(now * 1000))
    r.xadd(keys.dlq, {"kind": "track", "reason": "invalid alias", "payload": "{}"})
    r.zadd(keys.workers, {"host:1:abc": int(now * 1000)})
    r.set(keys.worker("host:1:abc"), "token", px=15_000)
    identity_queue(r, keys)


def test_render_shows_every_part(r, keys):
    busy_redis(r, keys)
    page = status_page.render(status_page.snapshot(r, keys))
    assert '<meta http-equiv="refresh" content="10">' in page
    for text in ("delivered objects/s", "webhooks/s", "profiles waiting", "PAUSED", "HTTP 401: Invalid API key",
                 "invalid alias", "host:1:abc", "alive", "<polyline", "peak 1,234.0/s", "live workers"):
        assert text in page, text
    assert "<script" not in page  # no build step, no script


def test_shows_the_identity_queue(r, keys, client):
    identity_queue(r, keys)
    page = client.get("/status").get_data(as_text=True)
    assert "Identity queue (/users/identify, /users/merge)" in page
    for row in ('<tr class=""><td>queued</td><td>4</td></tr>',
                '<tr class=""><td>held by workers</td><td>2</td></tr>',
                '<tr class=""><td>waiting to retry</td><td>1</td></tr>',
                '<tr class=""><td>dead-lettered: identify</td><td>0</td></tr>',
                '<tr class="bad"><td>dead-lettered: merge</td><td>1</td></tr>'):
        assert row in page, row


def test_an_empty_identity_queue_is_all_zeros(r, keys):
    page = status_page.render(status_page.snapshot(r, keys))
    for label in ("queued", "held by workers", "waiting to retry", "dead-lettered: identify", "dead-lettered: merge"):
        assert f'<tr class=""><td>{label}</td><td>0</td></tr>' in page, label


def test_values_are_escaped(r, keys):
    r.xadd(keys.dlq, {"kind": "track", "reason": "<img src=x onerror=alert(1)>", "payload": "{}"})
    page = status_page.render(status_page.snapshot(r, keys))
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_redis_down_page():
    page = status_page.render_down("ConnectionError")
    assert "Redis does not answer" in page and 'content="10"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium): "
                                              "the page is checked with Flask's client only")
def test_headless_chromium_renders_the_figures(r, keys, tmp_path):
    busy_redis(r, keys)
    html = tmp_path / "status.html"
    html.write_text(status_page.render(status_page.snapshot(r, keys)))
    shot = tmp_path / "status.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=60).stdout
    for text in ("1,234.0", "PAUSED", "invalid alias", "host:1:abc"):
        assert text in dom, text
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1000,1400", html.as_uri()],
                   capture_output=True, timeout=60)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real page, not a blank one
    if os.environ.get("LINESYNC_SCREENSHOT_TO"):  # docs/status-page.png is made this way
        shutil.copy(shot, os.environ["LINESYNC_SCREENSHOT_TO"])


def test_served_on_the_admin_surface_only(r, keys, client, public_client):
    busy_redis(r, keys)
    page = client.get("/status")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "linesync status" in page.get_data(as_text=True) and page.headers["Cache-Control"] == "no-store"
    assert public_client.get("/status").status_code == 404


@pytest.mark.parametrize("mode, shown, hidden", [
    ("subscription_group", ["subscription group sg-page"], ["line_follow_state"]),
    ("attributes", ["custom attributes line_follow_state and line_follow_state_at", "followed / unfollowed",
                    "line_follow_state_at"], ["sg-page"]),
    ("both", ["subscription group sg-page and custom attributes", "followed / unfollowed"], []),
])
def test_shows_where_the_follow_state_goes_in_braze(r, keys, mode, shown, hidden):
    from shared.config import Settings

    page = status_page.render(status_page.snapshot(r, keys, Settings(braze_subscription_group_id="sg-page",
                                                                     braze_state_mode=mode)))
    assert f"<td>BRAZE_STATE_MODE</td><td>{mode}</td>" in page
    for text in shown:
        assert text in page, text
    for text in hidden:
        assert text not in page, text


def test_the_served_page_shows_the_ingress_s_state_mode(r, keys, settings):
    from ingress import create_app
    from tests.ingress.conftest import admin_surface

    app = create_app(settings.replace(braze_state_mode="attributes", braze_subscription_group_id=None))
    page = admin_surface(app.test_client()).get("/status").get_data(as_text=True)
    assert "<td>BRAZE_STATE_MODE</td><td>attributes</td>" in page and "line_follow_state_at" in page
