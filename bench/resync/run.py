"""Follower resync throughput: the pass over 1,000,000 followers.

    .venv/bin/python bench/resync/run.py [--followers 1000000] [--line sandbox|memory]
                                         [--line-page-ms 100 | --line-latency-ms 100]
                                         [--mark-missing] [--no-estimate] [--repeat 1]

Starts its own embedded Redis (AOF on, like production) and, with ``--line
sandbox`` (the default), the LINE sandbox (`linesync sandbox line`, a
separate process, generated ids) on loopback ports, then runs the resync
pass directly in this process — the same ``workers.resync.Resync.run_chunk``
a Celery chunk task runs, without Celery (a chunk normally stops after 20 s;
here it runs to the end). Every follower is new, so every page writes state
and queues every profile for Braze (the worst case for Redis memory). As in
production, the pass first asks LINE how many friends there are (the
sandbox's ``/v2/bot/insight/followers``, or the in-process list's size) and
makes the state's buckets for them ahead; ``--no-estimate`` measures a pass
without that figure.

Two figures the project holds itself to:

- the state pass alone, ``--line memory``: pages of the same generated ids
  made in this process before the clock starts (no HTTP, no hashing per id
  while timed), so what is measured is linesync's own work per follower
  (packing pages and applying them to Redis). Target >= 150,000 followers/s.
- at LINE's pace, ``--line-page-ms 100``: the sandbox answers each page 100 ms
  after its request arrived (its own work included), so 1,000-id pages can
  never go faster than 10,000 followers/s (each page needs the previous one's
  token). Target >= 95 % of that bound. ``--line-latency-ms 100`` instead
  sleeps 100 ms and then does the sandbox's work (generating and encoding the
  page: a few ms more per page, on this machine's load).

Prints followers/s for the pass, Redis time per follower (the server's CPU
time, and the time spent in the page transactions), Redis used_memory
before/after (and per follower), and this process's RSS. Exit status 0 when
every run met its target. Not a test: the numbers depend on the machine (the
sandbox, Redis and this process share it; note `uptime` with them).
"""

from __future__ import annotations

import argparse
import json
import os
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
from sandboxes.line_followers import MemoryFollowers  # noqa: E402
from workers import resync  # noqa: E402
from workers.line_api import LineClient  # noqa: E402

TOKEN = "bench-line-token"
# followers/s of the state pass alone (no LINE latency).
TARGET = 150_000
# Share of the paging bound (1,000 ids per page latency) a pass must reach when LINE is slow.
PACE_TARGET = 0.95


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


class TimedLine:
    """Wraps a LINE client: how long each page took to come back, as the pass's fetching thread saw it.
    ``estimate``: pass LINE's count of friends on (else the pass sizes nothing ahead)."""

    def __init__(self, line, estimate: bool = True):
        self.line, self.seconds, self.estimate = line, [], estimate

    def followers_ids(self, start: str | None = None, limit: int = 1000) -> tuple[list[str], str | None]:
        t0 = time.perf_counter()
        try:
            return self.line.followers_ids(start, limit)
        finally:
            self.seconds.append(time.perf_counter() - t0)

    def friends_estimate(self, at: float) -> int | None:
        return self.line.friends_estimate(at) if self.estimate else None


def redis_cpu(r: redis.Redis) -> float:
    """CPU seconds the Redis server's main thread has used (the whole server on Redis < 7)."""
    cpu = r.info("cpu")
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def one_pass(args, url: str | None) -> bool:
    server = EmbeddedRedis().start()
    try:
        r = redis.Redis.from_url(server.url, socket_timeout=30)
        keys = Keys()
        clock = SystemClock()
        line = TimedLine(MemoryFollowers(args.followers, made_ahead=True) if url is None else LineClient(url, TOKEN),
                         estimate=not args.no_estimate)
        r.config_resetstat()
        mem_before = int(r.info("memory")["used_memory"])
        cpu_before = redis_cpu(r)
        resync.start(r, keys, reason="bench", now_ms=now_ms(clock), mark_missing=args.mark_missing)
        rs = resync.Resync(r, keys, line, clock, run_seconds=24 * 3600)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        outcome = rs.run_chunk()
        secs = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        redis_cpu_s = redis_cpu(r) - cpu_before
        exec_us = r.info("commandstats").get("cmdstat_exec", {}).get("usec", 0)
        run = resync.load(r, keys)
        mem_after = int(r.info("memory")["used_memory"])
        n = max(1, run.followers)
        rate = run.followers / secs
        pace_ms = args.line_page_ms or args.line_latency_ms
        if pace_ms:
            bound = args.limit / (pace_ms / 1000)
            target = PACE_TARGET * bound
            goal = f"target >= {target:,.0f} = {PACE_TARGET:.0%} of the paging bound {bound:,.0f}"
        else:
            target = TARGET
            goal = f"target >= {TARGET:,}"
        source = ("in-process pages" + (", no count of friends" if args.no_estimate else "") if url is None else
                  f"LINE sandbox, each page answered in {args.line_page_ms:g} ms" if args.line_page_ms else
                  f"LINE sandbox, {args.line_latency_ms:g} ms latency + its work per page")
        print(f"resync pass ({source}): {outcome}, {run.followers:,} followers in {run.pages:,} pages, "
              f"{secs:.2f} s -> {rate:,.0f} followers/s ({goal})")
        print(f"  redis time per follower: {redis_cpu_s / n * 1e6:.2f} us CPU (server main thread), "
              f"{exec_us / n:.2f} us in the page transactions (MULTI/EXEC)")
        fetch = sorted(line.seconds)
        per_page = secs / max(1, run.pages)
        print(f"  per page: {per_page * 1000:.1f} ms wall, {cpu / max(1, run.pages) * 1000:.1f} ms "
              f"CPU in this process; a page took {sum(fetch) / len(fetch) * 1000:.1f} ms to come back on average "
              f"(median {fetch[len(fetch) // 2] * 1000:.1f}, max {fetch[-1] * 1000:.1f}) over {len(fetch):,} requests"
              + (f", so the pass ran at {sum(fetch) / len(fetch) / per_page:.1%} of the pace LINE allowed"
                 if pace_ms else ""))
        print(f"  state entries {state.count(r, keys):,}, profiles queued for Braze "
              f"{outbox.sizes(r, keys)['pending_profiles']:,}{', mark-missing on' if args.mark_missing else ''}")
        print(f"  redis used_memory: before {mem_before / 1e6:.1f} MB, after {mem_after / 1e6:.1f} MB "
              f"(+{(mem_after - mem_before) / 1e6:.1f} MB, {(mem_after - mem_before) / n:.0f} B per follower)")
        print(f"  python RSS now {rss_mb():.1f} MB, peak {peak_rss_mb():.1f} MB")
        return outcome == "completed" and rate >= target
    finally:
        server.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--followers", type=int, default=1_000_000)
    ap.add_argument("--line", choices=("sandbox", "memory"), default="sandbox",
                    help="where pages come from: the LINE sandbox over HTTP, or made in this process")
    pace = ap.add_mutually_exclusive_group()
    pace.add_argument("--line-page-ms", type=float, default=0.0,
                      help="the sandbox answers each page this long after the request (LINE's pace)")
    pace.add_argument("--line-latency-ms", type=float, default=0.0,
                      help="the sandbox waits this long, then makes the page")
    ap.add_argument("--mark-missing", action="store_true", help="also track the pass's ids (the option's cost)")
    ap.add_argument("--repeat", type=int, default=1, help="passes, each on a fresh Redis")
    ap.add_argument("--no-estimate", action="store_true",
                    help="LINE gives no count of friends: the state's buckets grow as followers come")
    args = ap.parse_args()
    args.limit = resync.PAGE_LIMIT
    if args.line == "memory" and (args.line_latency_ms or args.line_page_ms):
        ap.error("--line-page-ms / --line-latency-ms need --line sandbox")

    print(f"python RSS at start {rss_mb():.1f} MB; load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    sandbox, url = (None, None) if args.line == "memory" else start_sandbox(args.followers)
    try:
        if sandbox is not None and (args.line_latency_ms or args.line_page_ms):
            faults = {"page_time_ms": args.line_page_ms} if args.line_page_ms else {"latency_ms": args.line_latency_ms}
            req = urllib.request.Request(url + "/_sandbox/faults", method="POST", data=json.dumps(faults).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()
        ok = True
        for _ in range(args.repeat):
            ok = one_pass(args, url) and ok
        print(f"load average after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        return 0 if ok else 1
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(10)


if __name__ == "__main__":
    sys.exit(main())
