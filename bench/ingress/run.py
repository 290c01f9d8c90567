"""Ingress throughput and latency against a Flask hello world, same gunicorn settings.

    .venv/bin/python bench/ingress/run.py [--duration 10] [--connections 32] [--workers N]

Starts its own embedded Redis (AOF on, like production), then serves, one
after the other on loopback ports:

- ``hello``:   bench/ingress/hello.py with ``-c python:ingress.gunicorn_conf``
- ``ingress``: ``linesync ingress`` (the same gunicorn settings: linesync's
  gthread worker whose threads never wait for a client,
  ingress/buffered_worker.py; its admin bind on another free port)

and drives each with wrk (a Lua script POSTing one signed single-follow body,
as LINE sends it) or, when wrk is not on PATH, with a Python load generator
(threads, keep-alive http.client). A short warm-up precedes each measured run.
Prints req/s, p50 and p99 for both and the ratios; targets: ingress >= 0.65x
hello-world req/s and p99 <= 2x hello-world p99. Exit status 0 when both met.
Also prints the server CPU per request (gunicorn processes plus Redis, from
/proc), which moves less than req/s when other work shares the machine.
Not a test: numbers depend on the machine (wrk, Redis and gunicorn share it).

``--also granian,gevent`` adds the same app under other servers, for comparison
(docs/ingress-proxy.md): granian's WSGI mode (``pip install granian``; public
bind only) and gunicorn's ``gevent`` worker (``pip install gevent``). Neither is
a dependency of linesync; bench/ingress/drills.py puts them through the
slow-client and chunked drills.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ingress.gunicorn_conf import threads as DEFAULT_THREADS, worker_class, workers as DEFAULT_WORKERS  # noqa: E402
from linesync.commands.send_test_webhook import follow_event, line_user_id, webhook_body  # noqa: E402
from shared.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.signature import sign  # noqa: E402

SECRET = "bench-channel-secret"
PATH = "/line/events"
TARGET_RPS_RATIO = 0.65
TARGET_P99_RATIO = 2.0

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["X-Line-Signature"] = {signature}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def other_server(name: str, workers: int, threads: int, port: int) -> list[str]:
    """The ingress app under another server (for comparison only), listening on ``port``."""
    if name == "granian":
        return [str(Path(sys.executable).with_name("granian")), "--interface", "wsgi", "--factory",
                "--workers", str(workers), "--blocking-threads", str(threads), "--no-access-log",
                "--host", "127.0.0.1", "--port", str(port), "ingress:create_app"]
    if name == "gevent":
        return [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf", "--worker-class", "gevent",
                "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "ingress:create_app()"]
    raise SystemExit(f"unknown server {name!r}: granian or gevent")


def lua_string(s: str) -> str:
    return json.dumps(s)  # JSON string escapes are valid Lua for ASCII bodies


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir(), stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("POST", PATH, body=b"{}")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start: {' '.join(cmd)}\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of these processes (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def server_pids(proc: subprocess.Popen) -> list[int]:
    """The gunicorn master and its workers."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        children = []
    return [proc.pid, *map(int, children)]


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "5s",
         "-s", str(script), f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, non2xx, errors = line.split()[1:]
    return {"rps": int(requests) / (int(duration_us) / 1e6), "p50": float(p50_us) / 1000,
            "p99": float(p99_us) / 1000, "requests": int(requests), "non2xx": int(non2xx), "errors": int(errors)}


def run_python(port: int, body: bytes, headers: dict[str, str], seconds: float, connections: int) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    stop_at = time.perf_counter() + seconds

    def loop(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while (t0 := time.perf_counter()) < stop_at:
            try:
                conn.request("POST", PATH, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                failures[i] += resp.status != 200
            except OSError:
                failures[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                continue
            latencies[i].append(time.perf_counter() - t0)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    all_l = sorted(x for per in latencies for x in per)
    pct = lambda q: all_l[min(len(all_l) - 1, int(q * len(all_l)))] * 1000  # noqa: E731
    return {"rps": len(all_l) / elapsed, "p50": pct(0.50), "p99": pct(0.99), "requests": len(all_l),
            "non2xx": sum(failures), "errors": 0}


def combine(runs: list[dict[str, float]], seconds: float) -> dict[str, float]:
    """Sum counts over the rounds; latency percentiles are the median of the rounds'."""
    def median(key: str) -> float:
        values = sorted(r[key] for r in runs)
        return values[len(values) // 2]

    requests = sum(r["requests"] for r in runs)
    return {"rps": sum(r["rps"] for r in runs) / len(runs), "p50": median("p50"), "p99": median("p99"),
            "cpu_us": sum(r["cpu"] for r in runs) / max(1, requests) * 1e6,
            "requests": requests, "non2xx": sum(r["non2xx"] for r in runs), "errors": sum(r["errors"] for r in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per target")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=5, help="alternating runs per target (duration is split)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    ap.add_argument("--threads", type=int, default=None, help="gunicorn threads per worker (default: gunicorn_conf)")
    ap.add_argument("--also", default="", help="comma-separated: granian, gevent (the ingress under another server)")
    ap.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    args = ap.parse_args()

    body = webhook_body([follow_event(line_user_id(), int(time.time() * 1000))])
    signature = sign(SECRET, body)
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": signature}
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    work = Path(tempfile.mkdtemp(prefix="linesync-bench-"))
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=lua_string(body.decode()), signature=lua_string(signature)))

    redis_server = EmbeddedRedis().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "GUNICORN_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(Path(__file__).parent)]),
               REDIS_URL=redis_server.url, LINE_CHANNEL_SECRET=SECRET, LINESYNC_LOG_LEVEL="WARNING")
    if args.threads:
        env["GUNICORN_CMD_ARGS"] = f"--threads {args.threads}"
    targets = {
        "hello": lambda port: [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf",
                               "--workers", str(args.workers), "hello:app", "--bind", f"127.0.0.1:{port}"],
        "ingress": lambda port: [sys.executable, "-m", "linesync.cli", "ingress", "--workers", str(args.workers),
                                 "--admin-bind", f"127.0.0.1:{free_port()}", "--bind", f"127.0.0.1:{port}"],
    }
    for name in filter(None, args.also.split(",")):
        targets[name] = partial(other_server, name, args.workers, args.threads or DEFAULT_THREADS)
    print(f"load: {'wrk' if use_wrk else 'python threads'}, {args.connections} connections, "
          f"{args.duration:g}s per target in {args.rounds} alternating rounds (+{args.warmup:g}s warm-up); gunicorn "
          f"{worker_class.rsplit('.', 1)[-1]}, "
          f"{args.workers} workers x {args.threads or DEFAULT_THREADS} threads; body {len(body)} bytes; {os.cpu_count()} CPUs")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for name, cmd in targets.items():
            port = free_port()
            procs[name] = (start(cmd(port), env, port, work / f"{name}.log"), port)

        def measure(port: int, seconds: float) -> dict[str, float]:
            if use_wrk:
                return run_wrk(port, script, seconds, args.connections)
            return run_python(port, body, headers, seconds, args.connections)

        for _name, (_proc, port) in procs.items():
            measure(port, args.warmup)
        # Alternate short runs so that a noisy neighbour hurts both targets alike.
        for _ in range(args.rounds):
            for name, (proc, port) in procs.items():
                pids = server_pids(proc) + [redis_server.proc.pid]
                cpu_before = cpu_seconds(pids)
                m = measure(port, args.duration / args.rounds)
                m["cpu"] = cpu_seconds(pids) - cpu_before
                rounds[name].append(m)
        import redis

        stored = redis.Redis.from_url(redis_server.url).xlen(Keys().webhooks)
    finally:
        for proc, _port in procs.values():
            stop(proc)
        redis_server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    results = {name: combine(runs, args.duration) for name, runs in rounds.items()}

    print(f"{'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-200':>8} {'errors':>7} "
          f"{'server CPU us/req':>18}")
    for name, m in results.items():
        print(f"{name:<8} {m['rps']:>9.0f} {m['p50']:>8.2f} {m['p99']:>8.2f} {m['requests']:>9} "
              f"{m['non2xx']:>8} {m['errors']:>7} {m['cpu_us']:>18.0f}")
    for name in results.keys() - {"hello", "ingress"}:
        print(f"{name}/hello req/s ratio {results[name]['rps'] / results['hello']['rps']:.2f}, "
              f"p99 ratio {results[name]['p99'] / results['hello']['p99']:.2f}, "
              f"CPU per request ratio {results[name]['cpu_us'] / results['hello']['cpu_us']:.2f}")
    hello, ing = results["hello"], results["ingress"]
    rps_ratio, p99_ratio = ing["rps"] / hello["rps"], ing["p99"] / hello["p99"]
    ok = rps_ratio >= TARGET_RPS_RATIO and p99_ratio <= TARGET_P99_RATIO and ing["non2xx"] == 0
    print(f"ingress/hello req/s ratio {rps_ratio:.2f} (target >= {TARGET_RPS_RATIO}), "
          f"p99 ratio {p99_ratio:.2f} (target <= {TARGET_P99_RATIO}); "
          f"bodies in the Redis stream: {stored} -> {'MET' if ok else 'MISSED'}")
    # Throughput on a shared machine swings with the neighbours; CPU per request less so.
    print(f"hello/ingress server CPU per request ratio {hello['cpu_us'] / ing['cpu_us']:.2f} "
          f"(gunicorn workers + master, and Redis; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
