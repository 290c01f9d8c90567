"""The slow-client and chunked drills against the ingress under a given server (a comparison, not a test).

    .venv/bin/python bench/ingress/drills.py [ingress|granian|gevent ...]

For each server named (default: ``ingress``, i.e. ``linesync ingress`` with
linesync's worker; ``granian`` and ``gevent`` as in bench/ingress/run.py
``--also``, which need ``pip install granian`` / ``gevent``), on its own
embedded Redis, 2 workers:

- slow clients: 40 connections send a webhook's headers (``Content-Length:
  1500``) and then one byte or nothing; meanwhile 32 signed webhooks are
  posted (8 at a time, 5 s client timeout). Then: how many of the 40 got
  ``408`` within 15 s (a stalled request must not be kept forever).
- chunked bodies: 8 unsigned requests of 60,000 one-byte chunks sent at once,
  while 24 signed webhooks are posted; the answers to the 8, and the server
  processes' CPU seconds meanwhile.

Prints one line per drill. Figures depend on the machine and its neighbours.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from linesync.commands.send_test_webhook import follow_event, webhook_body  # noqa: E402
from run import cpu_seconds, other_server  # noqa: E402
from shared.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.signature import sign  # noqa: E402

SECRET = "drill-channel-secret"
WORKERS, THREADS = 2, 8
CLIENT_TIMEOUT = 5.0


def command(name: str, port: int) -> list[str]:
    if name == "ingress":
        return [sys.executable, "-m", "linesync.cli", "ingress", "--workers", str(WORKERS),
                "--bind", f"127.0.0.1:{port}", "--admin-bind", f"127.0.0.1:{free_port()}"]
    return other_server(name, WORKERS, THREADS, port)


def post_signed(port: int, body: bytes) -> tuple[int, float]:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        conn.request("POST", "/line/events", body=body, headers={"X-Line-Signature": sign(SECRET, body)})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def webhooks(port: int, count: int, tag: int) -> str:
    bodies = [webhook_body([follow_event(f"U{tag:08x}{i:024x}", 1_700_000_000_000 + i)]) for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda b: post_signed(port, b), bodies))
    statuses = [s for s, _ in results]
    took = sorted(t for _, t in results)
    others = sorted(set(statuses) - {200})
    return (f"signed webhooks {statuses.count(200)}/{count} 200{f' (others: {others}, 0 = no answer)' if others else ''},"
            f" median {took[len(took) // 2] * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms")


def slow_clients(port: int) -> str:
    head = (b"POST /line/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Line-Signature: anything\r\nContent-Length: 1500\r\n\r\n")
    socks = []
    for i in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head + b"{" if i % 2 else head)
        socks.append(s)
    time.sleep(0.5)
    result = webhooks(port, 32, 1)
    cut, deadline = 0, time.monotonic() + 15
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            cut += s.recv(100).startswith(b"HTTP/1.1 408")
        except OSError:
            pass
        s.close()
    return f"{result}; stalled requests answered 408 within 15 s: {cut}/40"


def chunked(port: int, pids: list[int]) -> str:
    request = (b"POST /line/events HTTP/1.1\r\nHost: x\r\nX-Line-Signature: nope\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\n \r\n" * 60_000 + b"0\r\n\r\n")
    answers: list[bytes] = []

    def attack() -> None:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        threading.Thread(target=lambda: _send_quietly(s, request), daemon=True).start()
        s.settimeout(15)
        got = b""
        try:
            while data := s.recv(65536):
                got += data
        except OSError:
            pass
        answers.append(got.split(b"\r\n", 1)[0] or b"no answer in 15 s")
        s.close()

    cpu_before = cpu_seconds(pids)
    attackers = [threading.Thread(target=attack) for _ in range(8)]
    for t in attackers:
        t.start()
    result = webhooks(port, 24, 2)
    for t in attackers:
        t.join()
    return (f"{result}; the 8 chunked ones: {sorted(set(a.decode(errors='replace') for a in answers))}; "
            f"server CPU {cpu_seconds(pids) - cpu_before:.2f} s")


def _send_quietly(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except OSError:
        pass


def all_pids(pid: int) -> list[int]:
    return [pid] + [p for child in server_pids_of(pid) for p in all_pids(child)]


def server_pids_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def drill(name: str) -> None:
    redis_server = EmbeddedRedis().start()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROMETHEUS_", "GUNICORN_", "LINE_", "LINESYNC_", "REDIS_", "INGRESS_"))}
    env.update(PYTHONPATH=str(REPO), REDIS_URL=redis_server.url, LINE_CHANNEL_SECRET=SECRET,
               LINESYNC_LOG_LEVEL="WARNING")
    log = Path(tempfile.mkdtemp(prefix="linesync-drill-")) / f"{name}.log"
    proc = subprocess.Popen(command(name, port), env=env, cwd=log.parent, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if post_signed(port, b'{"destination":"U1","events":[]}')[0] == 200:
                break
            time.sleep(0.1)
        pids = all_pids(proc.pid)
        print(f"{name:<8} slow clients: {slow_clients(port)}", flush=True)
        time.sleep(1)
        print(f"{name:<8} chunked:      {chunked(port, pids)}", flush=True)
        import redis

        stored = redis.Redis.from_url(redis_server.url).xlen(Keys().webhooks)
        print(f"{name:<8} bodies stored: {stored} of 56 signed; server log: {log}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        redis_server.cleanup()


if __name__ == "__main__":
    for server in sys.argv[1:] or ["ingress"]:
        drill(server)
