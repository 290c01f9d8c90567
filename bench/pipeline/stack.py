"""Child processes of the benchmark: started in their own session, output to a log file,
always stopped (SIGTERM to the leader, then SIGKILL to its whole group)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

# Variables of linesync (and of gunicorn/prometheus) that must not leak in from the caller's shell.
_DROP = ("LINESYNC_", "BRAZE_", "LINE_", "RESYNC_", "INGRESS_", "PROMETHEUS_", "GUNICORN_", "BASELINE_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP) and k != "REDIS_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:  # whatever is left of the group (gunicorn workers, Celery pool children)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()


def wait_http(proc: Proc, port: int, path: str, *, method: str = "GET", timeout: float = 30.0) -> None:
    """Until anything answers HTTP on ``port`` (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request(method, path, body=b"{}" if method == "POST" else None)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not start listening on {port}\n{proc.tail()}")


def wait_celery(proc: Proc, broker_url: str, timeout: float = 60.0, key_prefix: str = "") -> None:
    """Until the worker answers a control ping over the broker (``key_prefix``: kombu's global_keyprefix)."""
    from celery import Celery

    app = Celery("bench-ping", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = True
    if key_prefix:
        app.conf.broker_transport_options = {"global_keyprefix": key_prefix}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                break
            if app.control.ping(timeout=0.5):
                return
        raise RuntimeError(f"{proc.name} did not answer a ping\n{proc.tail()}")
    finally:
        app.close()


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and all its descendants, alive now (s)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return own + sum(cpu_seconds(c) for c in children(pid))


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> tuple[int, list[int]]:
    """(sum, [main, child, child...]) VmRSS in kB of a process and its direct children."""
    per = [rss_kb(pid)] + sorted((rss_kb(c) for c in children(pid)), reverse=True)
    return sum(per), per


class Sandbox:
    """Client of the Braze sandbox's /_sandbox/* admin endpoints."""

    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._get("/_sandbox/stats")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self._get(f"/_sandbox/requests?since={since}")["requests"]

    def profiles(self) -> list[dict[str, Any]]:
        return self._get("/_sandbox/profiles")["profiles"]

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_sandbox/reset", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def track_ok(self) -> int:
        """How many /users/track requests were answered 2xx."""
        counts = self.stats()["requests"].get("/users/track", {})
        return sum(v for k, v in counts.items() if k.startswith("2"))
