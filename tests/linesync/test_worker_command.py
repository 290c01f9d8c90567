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
from linesync.commands.worker import beat_argv, parse_queues, worker_argv
from shared import queues

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


def test_worker_argv_defaults_to_every_queue():
    argv = worker_argv(python="/py", hostname="box", pid=42)
    assert argv[:6] == ["/py", "-m", "celery", "-A", "workers", "worker"]
    assert argv[argv.index("--queues") + 1] == ",".join(queues.ALL)
    assert argv[argv.index("-n") + 1] == "linesync-box-42@%h"
    assert argv[argv.index("--loglevel") + 1] == "INFO"
    assert "--concurrency" not in argv  # Celery's own default


def test_worker_argv_with_options():
    argv = worker_argv(python="/py", queue_names=(queues.DELIVER,), concurrency=8,
                       loglevel="DEBUG", hostname="h", pid=1)
    assert argv[argv.index("--queues") + 1] == queues.DELIVER
    assert argv[argv.index("--concurrency") + 1] == "8"
    assert argv[argv.index("--loglevel") + 1] == "DEBUG"


def test_beat_argv_uses_redbeat():
    argv = beat_argv(python="/py")
    assert argv[:6] == ["/py", "-m", "celery", "-A", "workers", "beat"]
    assert argv[argv.index("-S") + 1] == "redbeat.RedBeatScheduler"


def test_parse_queues():
    assert parse_queues(None) == queues.ALL
    assert parse_queues(f" {queues.CONSUME} , {queues.CONTROL},{queues.CONSUME}") == (queues.CONSUME, queues.CONTROL)
    with pytest.raises(click.BadParameter, match="unknown queue nope"):
        parse_queues(f"{queues.CONSUME},nope")
    with pytest.raises(click.BadParameter):
        parse_queues(" , ")


@pytest.fixture
def exec_calls(monkeypatch, tmp_path):
    calls: list[list[str]] = []
    monkeypatch.setattr(worker_module.os, "execvp", lambda file, argv: calls.append(list(argv)))
    monkeypatch.chdir(tmp_path)
    for k in WORKER_ENV:
        monkeypatch.delenv(k, raising=False)
    return calls


def test_worker_command_execs_celery_with_its_options(exec_calls):
    result = CliRunner().invoke(
        worker_module.worker, ["--concurrency", "3", "--queues", queues.DELIVER, "-l", "warning"],
        env=WORKER_ENV,
    )
    assert result.exit_code == 0, result.output
    [argv] = exec_calls
    assert argv[0] == sys.executable
    assert argv == worker_argv(python=sys.executable, queue_names=(queues.DELIVER,), concurrency=3,
                               loglevel="WARNING", hostname=socket.gethostname().split(".")[0],
                               pid=os.getpid())


def test_worker_rejects_an_unknown_queue_before_exec(exec_calls):
    result = CliRunner().invoke(worker_module.worker, ["--queues", "celery"], env=WORKER_ENV)
    assert result.exit_code == 2
    assert "unknown queue celery" in result.output
    assert exec_calls == []


def test_beat_command_execs_celery_beat(exec_calls):
    result = CliRunner().invoke(worker_module.beat, [], env={"REDIS_URL": WORKER_ENV["REDIS_URL"]})
    assert result.exit_code == 0, result.output
    assert exec_calls == [beat_argv(python=sys.executable)]
