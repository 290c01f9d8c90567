"""Follower resync throughput: the state pass over 1,000,000 followers.

    .venv/bin/python bench/resync/run.py [--followers 1000000] [--mark-missing]

Starts its own embedded Redis (AOF on, like production) and the LINE sandbox
(`linesync sandbox line`, a separate process, generated ids) on loopback
ports, then runs the resync pass directly in this process — the same
``workers.resync.Resync.run_chunk`` a Celery chunk task runs, without Celery
(a chunk normally stops after 20 s; here it runs to the end). Every follower
is new, so every page writes state and queues every profile for Braze (the
worst case for Redis memory).

Prints followers/s for the pass, Redis used_memory before/after (and per
follower), and this process's RSS at start and end (and peak). Target:
>= 50,000 followers/s. Exit status 0 when met. Not a test: the numbers depend
on the machine (the sandbox, Redis and this process share it).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from shared.clock import SystemClock, now_ms  # noqa: E402
from shared.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from shared import outbox, state  # noqa: E402
from shared.keys import Keys  # noqa: E402
from workers import resync  # noqa: E402
from workers.line_api import LineClient  # noqa: E402

TOKEN = "bench-line-token"
TARGET = 50_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_sandbox(followers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "linesync.cli", "sandbox", "line", "--bind", f"127.0.0.1:{port}",
                             "--followers", str(followers), "--access-token", TOKEN],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_sandbox/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("LINE sandbox did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--followers", type=int, default=1_000_000)
    ap.add_argument("--mark-missing", action="store_true", help="also track the pass's ids (the option's cost)")
    args = ap.parse_args()

    rss_start = rss_mb()
    sandbox, url = start_sandbox(args.followers)
    server = EmbeddedRedis().start()
    try:
        r = redis.Redis.from_url(server.url, socket_timeout=30)
        keys = Keys()
        clock = SystemClock()
        r.config_resetstat()
        mem_before = int(r.info("memory")["used_memory"])
        resync.start(r, keys, reason="bench", now_ms=now_ms(clock), mark_missing=args.mark_missing)
        rs = resync.Resync(r, keys, LineClient(url, TOKEN), clock, run_seconds=24 * 3600)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        outcome = rs.run_chunk()
        secs = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        exec_us = r.info("commandstats").get("cmdstat_exec", {}).get("usec", 0)
        run = resync.load(r, keys)
        mem_after = int(r.info("memory")["used_memory"])
        rss_end = rss_mb()
        rate = run.followers / secs
        per = (mem_after - mem_before) / max(1, run.followers)
        print(f"resync pass: {outcome}, {run.followers:,} followers in {run.pages:,} pages, "
              f"{secs:.2f} s -> {rate:,.0f} followers/s (target >= {TARGET:,})")
        print(f"  state entries {state.count(r, keys):,}, profiles queued for Braze "
              f"{outbox.sizes(r, keys)['pending_profiles']:,}"
              f"{', mark-missing on' if args.mark_missing else ''}")
        print(f"  per page: {secs / max(1, run.pages) * 1000:.1f} ms wall, {cpu / max(1, run.pages) * 1000:.1f} ms CPU "
              f"in this process, {exec_us / max(1, run.pages) / 1000:.1f} ms in Redis (MULTI/EXEC)")
        print(f"redis used_memory: before {mem_before / 1e6:.1f} MB, after {mem_after / 1e6:.1f} MB "
              f"(+{(mem_after - mem_before) / 1e6:.1f} MB, {per:.0f} B per follower)")
        print(f"python RSS: start {rss_start:.1f} MB, end {rss_end:.1f} MB, peak {peak_rss_mb():.1f} MB")
        return 0 if outcome == "completed" and rate >= TARGET else 1
    finally:
        server.cleanup()
        sandbox.terminate()
        sandbox.wait(10)


if __name__ == "__main__":
    sys.exit(main())
