"""Real Redis topologies for tests: a primary + replica watched by three sentinels, and a TLS server.

Every process is a ``redis-server`` started here on free ports in a temporary
directory (sentinels are ``redis-server <conf> --sentinel``), stopped by
``stop()``. Nothing here talks to a Redis it did not start.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from shared.embedded_redis import find_redis_server, free_port

MASTER = "linesync-primary"
# Sentinels call the primary down after this long without an answer (ms), and may retry a failover after ...
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10_000


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class _Servers:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="linesync-topology-"))
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        p = subprocess.Popen([find_redis_server(), *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        self.procs.append(p)
        return p

    def logs(self) -> str:
        return "\n".join(f"== {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in sorted(self.dir.glob("*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _data_args(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no"]


class SentinelTopology(_Servers):
    """A primary, one replica and three sentinels (quorum 2), all on 127.0.0.1."""

    def __init__(self, *, sentinels: int = 3, password: str | None = None) -> None:
        super().__init__()
        self.ports = [free_port(), free_port()]  # primary, replica (they swap roles on failover)
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.password = password  # the data nodes' (requirepass/masterauth); sentinels need none

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"sentinel://{auth}{hosts}/{MASTER}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password)

    def start(self) -> SentinelTopology:
        primary, replica = self.ports
        auth = ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        self.spawn("primary", [*_data_args(primary, self.dir / "primary"), *auth])
        self.spawn("replica", [*_data_args(replica, self.dir / "replica"), *auth,
                               "--replicaof", "127.0.0.1", str(primary)])
        _wait(lambda: self.node(replica).info("replication").get("master_link_status") == "up", 20,
              "the replica to sync")
        for i, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel-{i}.conf"  # sentinels rewrite their config: one file each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
                + (f"sentinel auth-pass {MASTER} {self.password}\n" if self.password else ""))
            self.spawn(f"sentinel-{i}", [str(conf), "--sentinel"])
        _wait(lambda: all(self._sees_replica(p) for p in self.sentinel_ports), 30, "the sentinels to see the replica")
        return self

    def _sees_replica(self, port: int) -> bool:
        s = redis.Redis(port=port, socket_timeout=1)
        return len(s.sentinel_slaves(MASTER)) >= 1 and int(s.sentinel_master(MASTER)["num-other-sentinels"]) >= \
            len(self.sentinel_ports) - 1

    def primary_port(self) -> int:
        host, port = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1).sentinel_get_master_addr_by_name(
            MASTER)
        return int(port)

    def primary(self) -> redis.Redis:
        return self.node(self.primary_port())

    def failover(self, timeout: float = 30.0) -> int:
        """``SENTINEL FAILOVER`` and wait until every sentinel names the promoted replica; its port."""
        old = self.primary_port()
        redis.Redis(port=self.sentinel_ports[0], socket_timeout=2).execute_command("SENTINEL FAILOVER", MASTER)
        new = next(p for p in self.ports if p != old)

        def switched() -> bool:
            named = {redis.Redis(port=p, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER)[1]
                     for p in self.sentinel_ports}
            return {int(x) for x in named} == {new} and self.node(new).info("replication")["role"] == "master"
        _wait(switched, timeout, "the sentinels to name the promoted replica")
        return new

    def wait_old_primary_demoted(self, old: int, timeout: float = 30.0) -> None:
        """Until the old primary (if running) follows the new one: sentinels reconfigure it a few seconds later."""
        _wait(lambda: self.node(old).info("replication").get("master_link_status") == "up", timeout,
              "the old primary to become a replica")


class ClusterNode(_Servers):
    """One ``redis-server --cluster-enabled yes`` (no slots assigned): what a cluster-mode endpoint answers to INFO."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        # The cluster bus port defaults to port + 10000, past 65535 for a free port above 55535 (the
        # server then exits at start): give it a free port of its own.
        self.bus_port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ClusterNode:
        self.spawn("cluster", [*_data_args(self.port, self.dir / "data"), "--cluster-enabled", "yes",
                               "--cluster-port", str(self.bus_port),
                               "--cluster-config-file", str(self.dir / "nodes.conf")])
        _wait(lambda: redis.Redis(port=self.port).ping(), 20, "the cluster-mode redis-server")
        return self


class TlsRedis(_Servers):
    """A ``redis-server`` answering TLS only, with a self-signed CA and server certificate made by ``openssl``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why a TLS redis-server cannot be run here (None: it can)."""
        if shutil.which("openssl") is None:
            return "no openssl binary to make the test certificate"
        # With certificate files that do not exist, a server with TLS fails configuring it ("Failed to
        # configure TLS") and one without says so ("Bad directive" on tls-port for Redis, "Failed
        # finding TLS support" for Valkey's embedded build): either way it exits at once.
        missing = "/nonexistent/linesync-test"
        out = subprocess.run([find_redis_server(), "--port", "0", "--tls-port", str(free_port()), "--save", "",
                              "--tls-cert-file", missing + ".crt", "--tls-key-file", missing + ".key"],
                             capture_output=True, text=True, timeout=10)
        text = out.stdout + out.stderr
        if "Failed finding TLS support" in text or ("tls-port" in text and "Bad directive" in text):
            return f"this server ({find_redis_server()}) was built without TLS support"
        return None

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.crt")

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.ca_file}"

    def _make_certificates(self) -> None:
        d = self.dir

        def run(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=linesync test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")

    def start(self) -> TlsRedis:
        self._make_certificates()
        d = self.dir
        self.spawn("tls", ["--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "--dir", str(d),
                           "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
                           "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "no",
                           "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"])
        _wait(lambda: redis.Redis.from_url(self.url, socket_timeout=1).ping(), 20, "the TLS redis-server")
        return self

