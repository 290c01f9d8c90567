"""Delivery throughput: N dirty profiles from the outbox to Braze /users/track.

    .venv/bin/python bench/delivery/run.py [--profiles 300000] [--workers 1] [--concurrency C]
                                           [--latency-ms 150] [--deadline 300] [--compact-braze]
    .venv/bin/python bench/delivery/run.py --scaling [--profiles 20000] [--deadline 300]
    .venv/bin/python bench/delivery/run.py --profiles 10000000 --compact-braze --deadline 3600   # the 10M run

(--scaling takes 20,000 profiles unless told: 1 worker x 8 at 600 ms is ~1,000/s.)

Starts its own embedded Redis (AOF on, like production), the Braze sandbox
(``linesync sandbox braze``, rate limit 3000/3s = Braze's real limit, batch
75, ``--latency-ms`` injected per request) and the LINE sandbox as separate
processes on loopback ports (``--compact-braze``: the sandbox keeps each
profile as its identifier and subscription state, ~128 B instead of ~1.3 KB,
so 10,000,000 fit in ~1.3 GB). Each run: FLUSHALL, then a resync pass over N
generated followers run in this process (``workers.resync.Resync.run_chunk``,
as bench/resync/run.py does), which leaves N dirty profiles in the outbox.
The /users/track limiter is then paused in Redis while W worker processes
start (``celery -A workers worker``, each running workers/engine.py with
LINESYNC_DELIVERY_CONCURRENCY sender threads, default 64); once every worker
has registered, the pause is replaced by one ending 1.5 s later, so that
every sender starts at the same moment.

A run ends when the outbox (ready, in flight, open and retrying batches) is
empty and the sandbox holds N profiles, or after ``--deadline`` s. Time is
taken from the sandbox's request log: from the first /users/track request's
arrival (its receipt stamp ``t`` minus the injected latency: the sandbox
stamps a request after sleeping) to the last 2xx receipt. A sample of
followers is checked to be subscribed in Braze. A progress line every 60 s.

Prints the pass's followers/s and Redis ``used_memory`` per follower (minus
the empty server's) after the pass (every state and every profile dirty: a
first sync's peak), at rest after the drain, and ``used_memory_peak``; the
load average before and after the pass, at release and when drained.

Prints profiles/s and its share of Braze's 75,000 profiles/s, the Braze
requests in flight peak (sandbox ``inflight_peak``), 429s (must be 0: the
limiter never exceeds the limit), worker RSS (VmRSS of every worker process
and its descendants, sampled every 0.5 s: after start, peak, end) and worker
CPU (/proc/<pid>/stat, waited-for children included) per 1,000 profiles; to tell where the
time goes: the average requests in flight, the CPU of every process on the
machine during the run, Redis's busiest commands (server-side time), the Redis
time per delivered profile (INFO commandstats after minus before: the scripts'
time, which includes the commands they run, and every command's, an upper
bound) and the workers' CPU while idle for 2 s after the drain.

Targets: the default scenario (1 worker, default concurrency, 150 ms) >=
20,000 profiles/s; ``--scaling`` (LINESYNC_DELIVERY_CONCURRENCY=8, 600 ms, 1
then 2 workers; other scenario flags ignored) >= 1.8x from the second worker.
Every run must deliver all N profiles with no 429. Exit status 0 when met.
Worker logs (stdout+stderr) go to a temp dir, kept and tailed on failure.
Not a test: the numbers depend on the machine (everything shares it).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from linesync.commands.worker import WORKER_ENV_DEFAULTS  # noqa: E402

from sandboxes.line import follower_id  # noqa: E402
from shared import outbox  # noqa: E402
from shared.clock import SystemClock, now_ms  # noqa: E402
from shared.config import DEFAULT_DELIVERY_CONCURRENCY, parse_rate  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.limiter import TRACK, Limiter  # noqa: E402
from workers import resync  # noqa: E402
from workers.line_api import LineClient  # noqa: E402

from procs import RssPeak, clean_env, http, machine_busy, spawn, start_sandbox, stop, tail, usage  # noqa: E402

API_KEY, GROUP, LINE_TOKEN = "bench-braze-key", "sg-bench", "bench-line-token"
RATE_LIMIT, BATCH = "3000/3s", 75
BRAZE_MAX = 75_000  # profiles/s: 1,000 requests/s x 75 objects
TARGET_RATE, TARGET_SCALING = 20_000, 1.8
IDLE_WINDOW = 2.0  # s the workers are watched idle after the drain
PROGRESS_EVERY = 60.0  # s between progress lines while a run delivers
# Every sender is told to start this long ahead (ms): an idle sender looks at the gate at least every 1 s.
START_LEAD_MS = 1_500


@dataclass
class Result:
    delivered: bool  # all N profiles, before the deadline
    rate: float      # profiles/s
    n429: int
    sample_ok: bool  # every sampled follower is subscribed in Braze

    @property
    def clean(self) -> bool:
        return self.delivered and self.n429 == 0 and self.sample_ok


# ----------------------------------------------------------------------------- Redis

def redis_ms(r: redis.Redis) -> int:
    """Redis's clock (ms): the one the workers' limiter and pauses use."""
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def command_stats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """INFO commandstats: command -> (calls, server-side µs)."""
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in r.info("commandstats").items()}


# Script calls: their time includes the commands each script runs (which INFO also counts
# again under their own names).
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def redis_time(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
               profiles: int) -> tuple[float, float, str]:
    """Redis server-side time per delivered profile (µs) between two :func:`command_stats`:
    (scripts, every command: an upper bound, as it counts the commands scripts run twice),
    and the busiest commands (calls and µs per call)."""
    delta = {k: (c - before.get(k, (0, 0))[0], u - before.get(k, (0, 0))[1]) for k, (c, u) in after.items()}
    delta = {k: v for k, v in delta.items() if v[0] > 0}
    scripts = sum(u for k, (_, u) in delta.items() if k in SCRIPT_COMMANDS)
    total = sum(u for _, u in delta.values())
    busiest = sorted(delta.items(), key=lambda kv: -kv[1][1])[:5]
    line = ", ".join(f"{k} {c:,} x {u / c:.0f} µs" for k, (c, u) in busiest)
    return scripts / max(1, profiles), total / max(1, profiles), line


def redis_memory(r: redis.Redis) -> tuple[int, int, int]:
    """INFO memory: (used_memory, used_memory_peak since the server started, the clients' buffers) in bytes."""
    info = r.info("memory")
    return int(info["used_memory"]), int(info["used_memory_peak"]), int(info["mem_clients_normal"])


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_followers(r: redis.Redis, keys: Keys, line_url: str, n: int) -> float:
    """A resync pass over the LINE sandbox's ``n`` followers; returns its seconds."""
    clock = SystemClock()
    resync.start(r, keys, reason="bench", now_ms=now_ms(clock), mark_missing=False)
    t0 = time.perf_counter()
    outcome = resync.Resync(r, keys, LineClient(line_url, LINE_TOKEN), clock, run_seconds=24 * 3600).run_chunk()
    secs = time.perf_counter() - t0
    queued = outbox.sizes(r, keys)["pending_profiles"]
    if outcome != "completed" or queued != n:
        raise RuntimeError(f"resync pass {outcome}: {queued:,} of {n:,} profiles queued")
    return secs


def drained(r: redis.Redis, keys: Keys, braze: str, n: int) -> bool:
    """Outbox empty everywhere (nothing ready, in flight, open or retrying) and Braze holds ``n`` profiles."""
    return not any(outbox.sizes(r, keys).values()) and http(braze, "/_sandbox/stats")["profiles"] >= n


# ----------------------------------------------------------------------------- one run

def run(ctx: dict[str, Any], *, workers: int, concurrency: int | None, latency_ms: float, n: int,
        deadline: float, label: str) -> Result:
    """Load ``n`` profiles, start ``workers`` processes, measure until delivered, stop them; print the numbers."""
    r: redis.Redis = ctx["r"]
    keys, braze, cpu_of = Keys(), ctx["braze"], ctx["cpu_of"]
    r.flushall()
    mem0 = redis_memory(r)[0]
    load0 = loadavg()
    load_s = load_followers(r, keys, ctx["line"], n)
    mem_pass = redis_memory(r)[0]
    http(braze, "/_sandbox/reset", {})  # counters, profiles, request log, inflight_peak (and faults)
    http(braze, "/_sandbox/faults", {"latency_ms": latency_ms})
    limiter = Limiter(r, keys, TRACK, parse_rate(RATE_LIMIT))
    limiter.pause(redis_ms(r) + 120_000, "bench: until every worker has started", "rate_limit", now_ms=redis_ms(r))
    env = clean_env(REDIS_URL=ctx["redis_url"], BRAZE_REST_ENDPOINT=braze, BRAZE_API_KEY=API_KEY,
                    BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false",
                    LINESYNC_WORKER_METRICS_PORT="0",  # several workers on one host: no shared port
                    **({"LINESYNC_DELIVERY_CONCURRENCY": str(concurrency)} if concurrency else {}))
    env = {**WORKER_ENV_DEFAULTS, **env}  # as `linesync worker` runs it
    wlogs = [ctx["logs"] / f"worker-{workers}w-{concurrency or 'default'}c-{latency_ms:.0f}ms-{i}.log"
             for i in range(workers)]
    print(f"\n[{label}] {n:,} followers loaded by a resync pass in {load_s:.2f} s = {n / load_s:,.0f} followers/s "
          f"(load average before {load0}, after {loadavg()}); Redis used_memory +{(mem_pass - mem0) / n:.1f} B "
          f"per follower (every state, every profile dirty in the outbox: a first sync's peak); "
          f"starting {workers} worker(s)", flush=True)
    procs = ctx["workers"] = [spawn([sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel",
                                     "WARNING", "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle",
                                     "--without-heartbeat"], env, wlogs[i]) for i in range(workers)]
    pids = [p.pid for p in procs]
    delivered = False
    try:
        t = time.monotonic()
        while r.zcard(keys.workers) < workers:  # each engine registers as it starts its loops
            if time.monotonic() - t > 90 or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start\n" + "\n".join(tail(w) for w in wlogs))
            time.sleep(0.1)
        time.sleep(0.5)
        rss_start, cpu0 = usage(pids)
        others0, busy0 = {k: f() for k, f in cpu_of.items()}, machine_busy()
        r.config_resetstat()
        stats0 = command_stats(r)
        peak = RssPeak(pids)
        limiter.clear_pause()  # a pause only grows: lift it, then set the common start
        limiter.pause(redis_ms(r) + START_LEAD_MS, "bench: common start", "rate_limit", now_ms=redis_ms(r))
        t0, load_release, note = time.monotonic(), loadavg(), PROGRESS_EVERY
        while not (delivered := drained(r, keys, braze, n)) and time.monotonic() - t0 < deadline:
            time.sleep(0.2)
            if time.monotonic() - t0 >= note:
                note += PROGRESS_EVERY
                print(f"  ... {time.monotonic() - t0:.0f} s: {http(braze, '/_sandbox/stats')['profiles']:,} profiles "
                      f"in Braze; load average {loadavg()}", flush=True)
        load_drained = loadavg()
        if not delivered:
            print(f"  GAVE UP after --deadline {deadline:.0f} s: {outbox.sizes(r, keys)}")
        rss_end, cpu1 = usage(pids)
        wall, busy = time.monotonic() - t0, machine_busy() - busy0
        used = {"workers": cpu1 - cpu0, **{k: f() - others0[k] for k, f in cpu_of.items()}}
        rss_peak = max(peak.halt(), rss_start, rss_end)
        stats1 = command_stats(r)
        redis0 = cpu_of["redis"]()
        time.sleep(IDLE_WINDOW)
        idle_workers, idle_redis = ((usage(pids)[1] - cpu1) / IDLE_WINDOW,
                                    (cpu_of["redis"]() - redis0) / IDLE_WINDOW)
        mem_rest, mem_peak, mem_clients = redis_memory(r)
    finally:
        stop(procs)
        ctx["workers"] = []

    stats = http(braze, "/_sandbox/stats")
    log = http(braze, "/_sandbox/requests")["requests"]
    ok = [e for e in log if e["path"] == "/users/track" and 200 <= e["status"] < 300]
    secs = ok[-1]["t"] - (ok[0]["t"] - latency_ms / 1000) if ok else float("nan")  # first arrival -> last receipt
    got = n if delivered else sum(e["n_objects"] for e in ok)
    rate, in_flight = (got / secs, len(ok) * latency_ms / 1000 / secs) if secs > 0 else (float("nan"),) * 2
    n429 = stats["requests"].get("/users/track", {}).get("429", 0)
    sample = random.Random(7).sample(range(n), min(20, n))
    subscribed = sum(subscription(braze, follower_id(i)) == "subscribed" for i in sample)
    errors = sum(1 for w in wlogs for line in w.read_text(errors="replace").splitlines()
                 if any(word in line for word in ("ERROR", "CRITICAL", "Traceback")))
    c = concurrency or DEFAULT_DELIVERY_CONCURRENCY
    ceiling = min(BRAZE_MAX, workers * c * BATCH / (latency_ms / 1000))
    print(f"  {'delivered' if delivered else 'NOT all delivered'}: {got:,} of {n:,} profiles, {len(ok):,} "
          f"/users/track 2xx in {secs:.2f} s -> {rate:,.0f} profiles/s = {rate / BRAZE_MAX:.1%} of Braze's "
          f"{BRAZE_MAX:,}/s (ceiling from {workers} x {c} in flight at {latency_ms:.0f} ms: {ceiling:,.0f}/s); "
          f"load average at release {load_release}, drained {load_drained}"
          + ("" if not log or log[0]["seq"] == 1 else "; REQUEST LOG TRUNCATED: time from its oldest entry"))
    print(f"  Braze: requests in flight peak {stats['inflight_peak']}, average {in_flight:.1f}"
          f" (of {workers * c} senders), 429s {n429}, busiest second {stats['max_track_requests_per_second']} "
          f"requests (limit 1,000/s); dead letters {r.xlen(keys.dlq)}; "
          f"sample {subscribed}/{len(sample)} followers subscribed; sandbox holds {stats['profiles']:,} profiles"
          f"{' (compact)' if stats['compact'] else ''}, RSS {usage([ctx['braze_pid']])[0]:,.0f} MB")
    print(f"  redis used_memory per follower (minus the empty server's): after the pass {(mem_pass - mem0) / n:.1f} B, "
          f"at rest after the drain {(mem_rest - mem0) / n:.1f} B (with the workers' connections: clients' "
          f"buffers {mem_clients / 1e6:.1f} MB); used_memory_peak (since the server started) "
          f"{(mem_peak - mem0) / n:.1f} B per follower = {mem_peak / 1e6:,.1f} MB")
    print(f"  worker RSS (sum of {workers} process(es) and children): after start {rss_start:.1f} MB, "
          f"peak {rss_peak:.1f} MB, end {rss_end:.1f} MB; over the run: at 10 % {peak.at(0.1):.1f}, "
          f"50 % {peak.at(0.5):.1f}, 90 % {peak.at(0.9):.1f} MB (flat once warm: end within +5 % of the "
          f"50 % mark: {'yes' if rss_end <= 1.05 * peak.at(0.5) else 'NO'}; the first seconds warm up every "
          f"sender's connections and buffers)")
    print(f"  worker CPU: {used['workers']:.2f} CPU-s = {used['workers'] / max(1, got) * 1e6:.1f} CPU-ms per "
          f"1,000 profiles")
    print("  CPU from release to drained: " + ", ".join(f"{k} {v:.1f}" for k, v in used.items())
          + f", anything else {busy - sum(used.values()):.1f} = machine {busy:.1f} CPU-s over {wall:.1f} s "
          f"({busy / wall:.2f} of {os.cpu_count()} cores busy)")
    per_profile, upper, redis_line = redis_time(stats0, stats1, got)
    print(f"  redis time per delivered profile (INFO commandstats after - before): {per_profile:.1f} µs in "
          f"scripts (they include the commands they run; target <= 10 µs); every command {upper:.1f} µs "
          f"(an upper bound: commands run by scripts are counted again under their own names); Redis's "
          f"CPU {used['redis'] / max(1, got) * 1e6:.1f} µs (everything it did: commands, network, AOF). "
          f"Command times are wall time: on a busy machine they include the time Redis was not running")
    print(f"  redis (server-side time, busiest): {redis_line}")
    print(f"  idle after the drain ({IDLE_WINDOW:.0f} s): workers use {idle_workers:.2f} cores, "
          f"Redis {idle_redis:.2f} cores")
    print(f"  worker logs: {errors} ERROR/CRITICAL/Traceback lines")
    if errors or not delivered:
        for w in wlogs:
            print(f"  --- tail of {w}\n{tail(w)}")
    return Result(delivered, rate, n429, subscribed == len(sample))


def subscription(braze: str, user: str) -> str | None:
    """``user``'s state in the bench's subscription group in Braze (None: no such profile)."""
    try:
        return http(braze, f"/_sandbox/profile?alias_name={user}")["subscription_groups"].get(GROUP)
    except urllib.error.HTTPError:
        return None


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", type=int, default=None, help="default 300,000; 20,000 with --scaling")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=None, help="LINESYNC_DELIVERY_CONCURRENCY (default: unset)")
    ap.add_argument("--latency-ms", type=float, default=150.0)
    ap.add_argument("--deadline", type=float, default=300.0, help="longest wait for one run's delivery (s)")
    ap.add_argument("--scaling", action="store_true", help="concurrency 8, 600 ms: 1 worker, then 2")
    ap.add_argument("--compact-braze", action="store_true",
                    help="the Braze sandbox keeps each profile as its id and subscription state (~128 B instead "
                         "of ~1.3 KB): for millions of profiles")
    args = ap.parse_args()
    n = args.profiles or (20_000 if args.scaling else 300_000)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _terminate)

    logs = Path(tempfile.mkdtemp(prefix="linesync-bench-delivery-"))
    server = EmbeddedRedis()
    ctx: dict[str, Any] = {"logs": logs, "workers": []}
    sandboxes: list[subprocess.Popen] = []
    ok = False
    print(f"delivery benchmark: {n:,} profiles; Braze sandbox {RATE_LIMIT}, batch {BATCH}"
          f"{', compact' if args.compact_braze else ''}; {os.cpu_count()} CPUs shared by Redis, both sandboxes, "
          f"the workers and this process; load average {loadavg()}", flush=True)
    try:
        server.start()
        ctx["redis_url"] = server.url
        ctx["r"] = redis.Redis.from_url(server.url, socket_timeout=60)
        braze_proc, ctx["braze"] = start_sandbox("braze", ["--api-key", API_KEY, "--rate-limit", RATE_LIMIT,
                                                           "--batch-size", str(BATCH),
                                                           *(["--compact"] if args.compact_braze else [])],
                                                 logs / "braze.log")
        ctx["braze_pid"] = braze_proc.pid
        sandboxes.append(braze_proc)
        line_proc, ctx["line"] = start_sandbox("line", ["--followers", str(n), "--access-token", LINE_TOKEN],
                                               logs / "line.log")
        sandboxes.append(line_proc)
        redis_pid = server.proc.pid if server.proc else 0
        cpu_of: dict[str, Callable[[], float]] = {
            "braze sandbox": lambda: usage([braze_proc.pid])[1], "redis": lambda: usage([redis_pid])[1],
            "this process": lambda: sum(os.times()[:2])}
        ctx["cpu_of"] = cpu_of
        if args.scaling:
            one = run(ctx, workers=1, concurrency=8, latency_ms=600, n=n, deadline=args.deadline,
                      label="1 worker x 8, 600 ms")
            two = run(ctx, workers=2, concurrency=8, latency_ms=600, n=n, deadline=args.deadline,
                      label="2 workers x 8, 600 ms")
            ratio = two.rate / one.rate
            ok = one.clean and two.clean and ratio >= TARGET_SCALING
            print(f"\nscaling: {two.rate:,.0f} / {one.rate:,.0f} profiles/s = {ratio:.2f}x "
                  f"(target >= {TARGET_SCALING}x) -> {'PASS' if ok else 'MISS'}"
                  f"{'' if one.clean and two.clean else ' (a run did not deliver everything, or saw 429s)'}")
        else:
            res = run(ctx, workers=args.workers, concurrency=args.concurrency, latency_ms=args.latency_ms, n=n,
                      deadline=args.deadline,
                      label=f"{args.workers} worker(s) x {args.concurrency or 'default'}, {args.latency_ms:.0f} ms")
            default = args.workers == 1 and args.concurrency is None and args.latency_ms == 150
            ok = res.clean and (res.rate >= TARGET_RATE or not default)
            verdict = "all delivered, no 429" if res.clean else "NOT all delivered, or 429s"
            if default:
                verdict += f"; {res.rate:,.0f} profiles/s vs target >= {TARGET_RATE:,}"
            print(f"\nresult: {verdict} -> {'PASS' if ok else 'MISS'}"
                  f"{'' if default else ' (the throughput target applies to the default scenario only)'}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process")
        return 130
    except RuntimeError as e:  # a process did not start: its log tail is in the message
        print(f"\nFAILED: {e}")
    finally:
        stop(ctx["workers"] + sandboxes)
        server.cleanup()
        if ok:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            print(f"logs kept in {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
