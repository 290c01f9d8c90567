"""Fixtures for tests that run workers' pieces against the Braze sandbox over real HTTP."""

from __future__ import annotations

import pytest

from sandboxes.braze import BrazeSandbox
from workers.runtime import build

API_KEY = "workers-test-key"
GROUP = "sg-workers"


@pytest.fixture
def braze():
    sb = BrazeSandbox(api_key=API_KEY).start()
    yield sb
    sb.stop()


@pytest.fixture
def rt(r, settings, braze):
    """A worker runtime (Redis, clock, Braze client, limiters, senders) pointed at the sandbox."""
    s = settings.replace(braze_rest_endpoint=braze.url, braze_api_key=API_KEY,
                         braze_subscription_group_id=GROUP, flush_delay_ms=50, delivery_concurrency=4)
    return build(s)
