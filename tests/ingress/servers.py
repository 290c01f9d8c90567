"""A real `linesync ingress` (gunicorn, several workers) for tests, and a raw HTTP client.

``running_ingress`` starts the command as operators do, on free public and
admin ports, waits (bounded) until it answers, and stops it afterwards. Its
stdout and stderr go to files (a pipe could fill up and block the server).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.embedded_redis import free_port
from tests.conftest import TEST_SECRET

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def ingress_env(**extra: str) -> dict[str, str]:
    """The parent environment without linesync's or gunicorn's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LINE_", "LINESYNC_", "BRAZE_", "REDIS_", "PROMETHEUS_", "INGRESS_", "GUNICORN_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class Ingress:
    port: int
    admin_port: int
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextmanager
def running_ingress(redis_url: str, workdir: Path, *, workers: int = 2, **env: str) -> Iterator[Ingress]:
    port, admin_port = free_port(), free_port()
    out, err = workdir / "stdout.log", workdir / "stderr.log"
    with out.open("wb") as out_f, err.open("wb") as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "linesync.cli", "ingress", "--bind", f"127.0.0.1:{port}",
             "--admin-bind", f"127.0.0.1:{admin_port}", "--workers", str(workers)],
            env=ingress_env(REDIS_URL=redis_url, LINE_CHANNEL_SECRET=TEST_SECRET, **env),
            cwd=workdir, stdout=out_f, stderr=err_f,
        )
    ing = Ingress(port, admin_port, proc, out, err)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if get(port, "/healthz", timeout=1)[0] == 200 and get(admin_port, "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ingress did not start:\n" + ing.output())
            time.sleep(0.05)
        yield ing
    finally:
        ing.stop()


class Responses:
    """HTTP/1.1 responses read one by one from a raw socket (interim 1xx ones too), every read bounded."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def next(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-case headers, body) of the next response."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self.buf += _recv(self.sock, deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self.buf += _recv(self.sock, deadline)
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


def _recv(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no (whole) response in time")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed before a whole response")
    return data


def closed_within(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server still sends until it closes the connection (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"still open after {timeout}s (got {got[:80]!r})")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data
