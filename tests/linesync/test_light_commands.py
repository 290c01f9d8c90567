"""Operator commands that only read (or write) Redis never import Celery.

Each runs as operators run it, in its own interpreter, against the test Redis;
at exit the interpreter says which of Celery's packages it had imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("celery", "kombu", "billiard", "redbeat")
# Runs the console script's main() and, at exit (main() always exits), names the heavy packages imported.
PROBE = f"""
import atexit, sys
def _report():
    seen = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
    sys.__stderr__.write("HEAVY:" + ",".join(seen) + "\\n")
atexit.register(_report)
from linesync.cli import main
sys.argv = ["linesync", *sys.argv[1:]]
main()
"""
USER = "U0123456789abcdef0123456789abcdef"


def run(args: list[str], redis_url: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "BRAZE_", "LINESYNC_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args", [
    ["status"], ["status", "--json"], ["dlq", "list"], ["pauses"], ["config"],
    ["link", "ext-1", USER], ["unlink", "ext-1"],
])
def test_a_redis_only_command_does_not_import_celery(args, r, redis_url, tmp_path):
    res = run(args, redis_url, tmp_path)  # tmp_path: no .env file to read
    assert res.returncode == 0, res.stdout + res.stderr
    [report] = [line for line in res.stderr.splitlines() if line.startswith("HEAVY:")]
    assert report == "HEAVY:", f"linesync {' '.join(args)} imported {report[6:]}"
