"""Real processes for integration tests: Celery workers and beat, started and stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from shared.embedded_redis import free_port
from workers import BEAT_SCHEDULER

ROOT = Path(__file__).resolve().parents[2]


def base_env(**extra: str) -> dict[str, str]:
    """The parent environment minus any linesync settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LINESYNC_", "BRAZE_", "LINE_", "RESYNC_", "INGRESS_")) and k != "REDIS_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    """A child process whose output is kept (last lines) for failure messages."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]):
        self.name = name
        self.lines: deque[str] = deque(maxlen=400)
        self.proc = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no line containing {text!r}\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the main process (a warm shutdown for Celery), SIGKILL the group if it lingers."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def celery_worker(env: Mapping[str, str], *, concurrency: int | None = None, name: str = "w1") -> Proc:
    """A worker process, started as operators do (plain ``celery -A workers worker``, no -Q).

    ``concurrency``: Braze requests in flight (LINESYNC_DELIVERY_CONCURRENCY); None = the default.
    """
    if concurrency:
        env = {**env, "LINESYNC_DELIVERY_CONCURRENCY": str(concurrency)}
    env = {"LINESYNC_WORKER_METRICS_PORT": str(free_port()), **env}  # several workers per test: their own ports
    p = Proc(name, [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO",
                    "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"], env)
    p.wait_for_line("ready.", timeout=60)
    return p


def celery_beat(env: Mapping[str, str], *, name: str = "beat", schedule_dir: str | None = None) -> Proc:
    env = {"LINESYNC_BEAT_METRICS_PORT": str(free_port()), **env}
    return Proc(name, [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
                       "-S", BEAT_SCHEDULER], env)


def wait_until(check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.1, what: str = "",
               on_fail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check}\n{on_fail()}")
