"""POST /line/events/<channel>: per-channel secret, stream, 404 for unknown names, rotation (real Redis)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from ingress import create_app
from shared import channels
from shared.keys import Keys
from shared.signature import sign
from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET
from tests.ingress.conftest import admin_surface

FILE = """
[channels.default]
line_channel_secret = "{default}"
line_channel_access_token = "t0"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key = "k0"
braze_subscription_group_id = "sg0"

[channels.jp]
line_channel_secret = "jp-secret"
line_channel_secret_previous = "jp-old"
line_channel_access_token = "t1"
braze_rest_endpoint = "https://rest.iad-02.braze.com"
braze_api_key = "k1"
braze_subscription_group_id = "sg1"
""".replace("{default}", TEST_SECRET)


@pytest.fixture
def multi_settings(settings):
    base = settings.replace(line_channel_secret=None, channels_file="channels.toml")
    return base.replace(channel_table=channels.parse(FILE, base, {}))


@pytest.fixture
def mclient(multi_settings, r):
    return admin_surface(create_app(multi_settings).test_client())


def post(client, path, body, secret):
    headers = {"X-Line-Signature": sign(secret, body)} if secret else {}
    return client.post(path, data=body, headers=headers, content_type="application/json")


def signatures(channel, which):
    return REGISTRY.get_sample_value("linesync_ingress_signatures_total", {"channel": channel, "secret": which}) or 0


def test_each_channel_stores_into_its_own_stream(mclient, r, keys, follow_body):
    jp = Keys("linesync", "ch:jp")
    assert post(mclient, "/line/events/jp", follow_body, "jp-secret").status_code == 200
    assert post(mclient, "/line/events", follow_body, TEST_SECRET).status_code == 200
    assert post(mclient, "/line/events/default", follow_body, TEST_SECRET).status_code == 200
    assert r.xlen(jp.webhooks) == 1 and r.xlen(keys.webhooks) == 2
    assert r.xrange(jp.webhooks)[0][1][BODY_FIELD] == follow_body


def test_a_channel_refuses_another_channels_secret(mclient, r, keys, follow_body):
    assert post(mclient, "/line/events/jp", follow_body, TEST_SECRET).status_code == 401
    assert post(mclient, "/line/events", follow_body, "jp-secret").status_code == 401
    assert r.xlen(Keys("linesync", "ch:jp").webhooks) == 0 and r.xlen(keys.webhooks) == 0


@pytest.mark.parametrize("path", ["/line/events/tw", "/line/events/jp/x", "/line/events/"])
def test_unknown_channel_is_404_and_nothing_stored(mclient, r, follow_body, path):
    resp = post(mclient, path, follow_body, "jp-secret")
    assert resp.status_code == 404 and resp.get_json() == {"error": "unknown channel"}
    assert r.dbsize() == 0


def test_previous_secret_accepted_and_counted(mclient, r, follow_body):
    before = signatures("jp", "previous"), signatures("jp", "current")
    assert post(mclient, "/line/events/jp", follow_body, "jp-old").status_code == 200
    assert signatures("jp", "previous") == before[0] + 1 and signatures("jp", "current") == before[1]
    assert post(mclient, "/line/events/jp", follow_body, "jp-secret").status_code == 200
    assert signatures("jp", "current") == before[1] + 1
    assert r.xlen(Keys("linesync", "ch:jp").webhooks) == 2


def test_single_channel_deployment_serves_default_under_both_paths(client, r, keys, follow_body):
    assert post(client, "/line/events/default", follow_body, TEST_SECRET).status_code == 200
    assert post(client, "/line/events/jp", follow_body, TEST_SECRET).status_code == 404
    assert r.xlen(keys.webhooks) == 1


def test_single_channel_previous_secret(settings, r, keys, follow_body):
    c = admin_surface(create_app(settings.replace(line_channel_secret_previous="old")).test_client())
    assert post(c, "/line/events", follow_body, "old").status_code == 200
    assert post(c, "/line/events", follow_body, "neither").status_code == 401
    assert r.xlen(keys.webhooks) == 1


def test_without_a_default_channel_the_bare_path_is_404(settings, r, follow_body):
    base = settings.replace(channels_file="c.toml")
    table = channels.parse(FILE.split("[channels.jp]")[0].replace("channels.default", "channels.br"), base, {})
    c = admin_surface(create_app(base.replace(channel_table=table)).test_client())
    assert post(c, "/line/events", follow_body, TEST_SECRET).status_code == 404
    assert post(c, "/line/events/br", follow_body, TEST_SECRET).status_code == 200


def test_status_page_per_channel(mclient, r, follow_body):
    assert post(mclient, "/line/events/jp", follow_body, "jp-secret").status_code == 200
    page = mclient.get("/status?channel=jp")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "channel <b>jp</b>" in text and '<a href="?channel=default">default</a>' in text
    assert mclient.get("/status").status_code == 200  # the channel `default`
    assert mclient.get("/status?channel=br").status_code == 404
