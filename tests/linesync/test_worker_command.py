"""`linesync worker` / `linesync beat`: configuration checked first, then the Celery argv."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from linesync.commands import worker as worker_module
from linesync.commands.worker import beat_argv, worker_argv

WORKER_ENV = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "BRAZE_REST_ENDPOINT": "http://127.0.0.1:9",
    "BRAZE_API_KEY": "key-that-must-not-leak",
    "BRAZE_SUBSCRIPTION_GROUP_ID": "sg",
}


def run_cli(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in WORKER_ENV and not k.startswith(("LINE_", "BRAZE_"))}
    return subprocess.run(
        [sys.executable, "-m", "linesync.cli", *args],
        env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_missing_braze_api_key_fails_with_one_line(tmp_path):
    env = {k: v for k, v in WORKER_ENV.items() if k != "BRAZE_API_KEY"}
    result = run_cli(["worker"], env, tmp_path)  # tmp_path: no .env file to read
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BRAZE_API_KEY" in lines[0]
    assert "celery" not in (result.stdout + result.stderr).lower()  # never got to exec


def test_beat_needs_only_redis(tmp_path):
    result = run_cli(["beat"], {}, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "REDIS_URL" in result.stderr


def test_secrets_stay_out_of_config_errors(tmp_path):
    env = {**WORKER_ENV, "BRAZE_REST_ENDPOINT": "not a url"}
    result = run_cli(["worker"], env, tmp_path)
    assert "BRAZE_REST_ENDPOINT" in result.stderr
    assert "key-that-must-not-leak" not in result.stdout + result.stderr


def test_worker_argv():
    argv = worker_argv(python="/py", hostname="box", pid=42)
    assert argv[:6] == ["/py", "-m", "celery", "-A", "workers", "worker"]
    assert "--queues" not in argv  # the app declares its one queue: plain `celery -A workers worker` is the same
    assert argv[argv.index("-n") + 1] == "linesync-box-42@%h"
    assert argv[argv.index("--loglevel") + 1] == "INFO"


def test_beat_argv_uses_redbeat():
    argv = beat_argv(python="/py")
    assert argv[:6] == ["/py", "-m", "celery", "-A", "workers", "beat"]
    assert argv[argv.index("-S") + 1] == "workers.beat:Scheduler"


@pytest.fixture
def exec_calls(monkeypatch, tmp_path):
    calls: list[list[str]] = []
    monkeypatch.setattr(worker_module.os, "execvp", lambda file, argv: calls.append(list(argv)))
    monkeypatch.chdir(tmp_path)
    for k in WORKER_ENV:
        monkeypatch.delenv(k, raising=False)
    # What the commands set for the exec'd process is put back after the test.
    for k in (worker_module.CONCURRENCY_ENV, worker_module.LOG_LEVEL_ENV, *worker_module.WORKER_ENV_DEFAULTS):
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    return calls


def test_worker_command_execs_celery_with_its_options(exec_calls, monkeypatch):
    monkeypatch.delenv(worker_module.CONCURRENCY_ENV, raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    result = CliRunner().invoke(worker_module.worker, ["--concurrency", "3", "-l", "warning"], env=WORKER_ENV)
    assert result.exit_code == 0, result.output
    [argv] = exec_calls
    assert argv[0] == sys.executable
    assert argv == worker_argv(python=sys.executable, loglevel="WARNING",
                               hostname=socket.gethostname().split(".")[0], pid=os.getpid())
    # --concurrency is the number of Braze requests in flight, handed to the worker by environment
    assert os.environ[worker_module.CONCURRENCY_ENV] == "3"
    assert os.environ["MALLOC_ARENA_MAX"] == "2"  # two malloc arenas: flat memory with ~70 threads


def test_beat_command_execs_celery_beat(exec_calls):
    result = CliRunner().invoke(worker_module.beat, [], env={"REDIS_URL": WORKER_ENV["REDIS_URL"]})
    assert result.exit_code == 0, result.output
    assert exec_calls == [beat_argv(python=sys.executable)]
