"""`linesync pauses`: see and lift the pauses every worker obeys."""

import json

from click.testing import CliRunner

from linesync.commands.pauses import pauses
from shared.config import RateLimit
from shared.limiter import Limiter
from shared.clock import redis_now


def run(redis_url, *args):
    return CliRunner().invoke(pauses, list(args), env={"REDIS_URL": redis_url})


def test_shows_a_pause_and_clear_lifts_it(r, keys, redis_url):
    now = int(redis_now(r) * 1000)
    lim = Limiter(r, keys, "track", RateLimit(10, 1.0))
    lim.pause(now + 600_000, "HTTP 401: Invalid API key", "auth", now_ms=now)
    lim.failed(now)
    out = run(redis_url)
    assert out.exit_code == 0, out.output
    assert "track: PAUSED" in out.output and "auth: HTTP 401" in out.output and "identify: open" in out.output
    cleared = run(redis_url, "--clear")
    assert "track: pause lifted" in cleared.output
    state = json.loads(run(redis_url, "--json").output)
    assert not state["track"]["paused"] and state["track"]["failure_streak"] == 0
    assert lim.acquire(now).allowed
