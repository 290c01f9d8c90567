"""The delivery benchmark's processes: start and stop them, talk to the sandboxes, read /proc.

Used by bench/delivery/run.py (imported as a sibling module, as bench/pipeline does).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from shared.embedded_redis import free_port

REPO = Path(__file__).resolve().parents[2]
_TICK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- processes

def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus linesync's own settings (as tests/support/procs.base_env), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LINESYNC_", "BRAZE_", "LINE_", "RESYNC_", "INGRESS_")) and k != "REDIS_URL"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``argv`` in its own session, stdout and stderr to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM each (a warm shutdown for Celery), then SIGKILL each one's group: bounded, no strays."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # whatever is left of its session's group
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)


def tail(log: Path, n: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else ""


def http(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` as JSON) a sandbox endpoint; the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def start_sandbox(kind: str, args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """``linesync sandbox <kind>`` on a free port; returns (process, base URL) once it answers."""
    port = free_port()
    proc = spawn([sys.executable, "-m", "linesync.cli", "sandbox", kind, "--bind", f"127.0.0.1:{port}", *args],
                 clean_env(), log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            http(url, "/_sandbox/health")
            return proc, url
        except OSError:
            time.sleep(0.1)
    stop([proc])
    raise RuntimeError(f"{kind} sandbox did not start\n{tail(log)}")


# ----------------------------------------------------------------------------- /proc

def usage(pids: list[int]) -> tuple[float, float]:
    """(VmRSS MB, CPU s) summed over ``pids`` and all their descendants. CPU is utime+stime plus
    cutime+cstime, the CPU of children a process has waited for: a child (Redis's AOF rewrite, a
    worker's pool process) counts while it lives and then in its parent, so the sum never falls."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        try:
            kids.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
        except (OSError, ValueError):
            continue
    rss_kb, cpu, todo = 0, 0.0, list(pids)
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            rss_kb += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS:"))
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
        except (OSError, StopIteration):
            pass
    return rss_kb / 1024, cpu


def machine_busy() -> float:
    """CPU-s the whole machine has been busy (all cores; /proc/stat: all but idle and iowait)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(f) - f[3] - f[4]) / _TICK


class RssPeak(threading.Thread):
    """Samples the RSS of ``pids`` (and descendants) every 0.5 s until ``halt()``; keeps the peak
    and the samples (to show whether memory stays flat over the run)."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peak, self._halt = pids, 0.0, threading.Event()
        self.samples: list[float] = []
        self.start()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = usage(self.pids)[0]
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            self._halt.wait(0.5)

    def at(self, share: float) -> float:
        """The RSS sampled when ``share`` of the run had passed."""
        return self.samples[min(len(self.samples) - 1, int(share * len(self.samples)))] if self.samples else 0.0

    def halt(self) -> float:
        self._halt.set()
        self.join(5)
        return self.peak
