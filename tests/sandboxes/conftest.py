"""Sandboxes started in-process on a free port, talked to over real HTTP."""

from __future__ import annotations

import pytest
import requests

from sandboxes import BrazeSandbox, LineSandbox
from shared.clock import FakeClock

BRAZE_KEY = "test-key"
LINE_TOKEN = "test-token"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_001.0)


@pytest.fixture
def braze(clock):
    box = BrazeSandbox(api_key=BRAZE_KEY, clock=clock).start()
    yield box
    box.stop()


@pytest.fixture
def line(clock):
    box = LineSandbox(access_token=LINE_TOKEN, followers=2500, clock=clock).start()
    yield box
    box.stop()


@pytest.fixture
def http():
    with requests.Session() as s:
        yield s
