"""`linesync state USER_ID`: what linesync holds for one user, read only, without Celery."""

import json
import subprocess
import sys

from click.testing import CliRunner

from linesync.commands.state import state_command
from shared import links, outbox, state
from shared.events import make_version
from shared.state import Change

U = "U" + "4a" * 16
V = make_version(1_700_000_000_123, 1_700_000_000_200, 0, 0)


def run(redis_url, *args):
    return CliRunner().invoke(state_command, list(args), env={"REDIS_URL": redis_url})


def test_a_followed_linked_user_queued_then_in_flight(r, keys, redis_url):
    state.apply(r, keys, [Change(U, V, "S")], now_ms=1000, dedupe_ttl=60)
    links.link(r, keys, "crm-1", U, now_ms=1000)
    d = json.loads(run(redis_url, U, "--json").output)
    assert d["state"] == "subscribed" and d["version"] == V and d["effective_ms"] == 1_700_000_000_123
    assert d["effective_time"] == "2023-11-14T22:13:20.123+00:00"
    assert d["queued"] and d["in_flight_batch"] is None and d["external_ids"] == ["crm-1"]
    b = outbox.claim(r, keys, now_ms=5000, max_objects=75, flush_delay_ms=0)
    d = json.loads(run(redis_url, U, "--json").output)
    assert not d["queued"] and d["in_flight_batch"] == b.id
    text = run(redis_url, U).output
    assert "subscribed since 2023-11-14T22:13:20.123+00:00" in text and f"in flight in batch {b.id}" in text
    assert "crm-1" in text


def test_an_unknown_user(r, keys, redis_url):
    out = run(redis_url, "U-nobody")
    assert out.exit_code == 0 and "no state held" in out.output and "nothing waiting" in out.output
    assert json.loads(run(redis_url, "U-nobody", "--json").output)["known"] is False


def test_the_command_does_not_import_celery(redis_url, r):
    code = ("import sys; from linesync.cli import main; sys.argv = ['linesync', 'state', 'U1'];\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'celery' not in sys.modules, 'celery imported'\n")
    res = subprocess.run([sys.executable, "-c", code], env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "U1: no state held" in res.stdout
