"""End-to-end pipeline throughput: linesync vs the obvious design, LINE webhook to Braze receipt.

    .venv/bin/python bench/pipeline/run.py [--events 50000] [--threads 8] [--only linesync|baseline] [--keep-logs]

Starts on 127.0.0.1 an embedded Redis (AOF on, like production) and the Braze
sandbox as its own process (``linesync sandbox braze``, rate limit 3000/3s —
Braze's real /users/track limit — batch size 75), then measures, one after the
other, two stacks under the same gunicorn settings (ingress/gunicorn_conf.py);
linesync runs one default worker process, the baseline a Celery prefork pool
of 8 processes (what linesync's worker used before its delivery engine):

(A) linesync: ``linesync ingress`` + ``celery -A workers worker`` (Redis db 0,
    default settings: flush delay, batch size, cluster-wide limiter).
(B) the obvious design (bench/pipeline/baseline/): linebot.v3 WebhookParser in
    a Flask view, one Celery task per follow/unfollow, each task one
    /users/track POST with one attributes object (Redis db 1 as broker).

Each stack first gets a small warm-up (other users), the sandbox is reset, and
then the same pre-built, validly signed bodies (workload.py: 50,000 follow/
unfollow events, ~20,000 users, 1–5 events per body, increasing timestamps)
are POSTed by a thread pool over keep-alive connections. The run ends when the
stack is drained (linesync: stream consumed, outbox and in-flight batches
empty; baseline: broker queue empty and the sandbox quiet). Throughput is
events / (last 2xx /users/track receipt − first POST). Correctness: each
user's Braze subscription state against its newest event. Delivery latency:
see analysis.py. Also: Braze requests per event, the linesync worker's RSS
(its process and any children, /proc VmRSS) after warm-up and at the end, and Redis
memory per deduped event.

Targets (linesync): >= 5x the baseline's events/s, <= 1/70 Braze requests per
event, flat worker memory (end RSS within +10 % of the post-warm-up RSS).
Exit status 0 when all are met. Not a test: everything shares the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

import redis  # noqa: E402

from analysis import Outcome, evaluate  # noqa: E402
from shared import dedupe, outbox  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from shared.keys import STREAM_GROUP, Keys  # noqa: E402
from stack import Proc, Sandbox, clean_env, cpu_seconds, tree_rss_kb, wait_celery, wait_http  # noqa: E402
from workload import PostResult, Workload, build, post_all  # noqa: E402

SECRET = "bench-channel-secret"
API_KEY = "bench-braze-key"
GROUP = "sg-bench"
RATE_LIMIT = "3000/3s"
# Enough for every sender thread of the worker to have sent (pools and buffers warm), so the
# memory measured after it is the working size, and growth past it would be a leak.
WARMUP_EVENTS = 5000
TARGET_SPEEDUP = 5.0
TARGET_REQ_PER_EVENT = 1 / 70
TARGET_RSS_GROWTH = 0.10
DEDUPE_TTL = Settings.dedupe_ttl_seconds  # the workers run with the default
# The obvious design's Celery prefork processes (see main()).
BASELINE_CONCURRENCY = 8


@dataclass
class Result:
    name: str
    posted: PostResult | None = None
    outcome: Outcome | None = None
    drained: bool = False
    drain_seconds: float = 0.0
    rss_start: tuple[int, list[int]] | None = None
    rss_end: tuple[int, list[int]] | None = None
    rss_peak: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def rate(self, n_events: int) -> float:
        if not (self.outcome and self.outcome.last_t and self.posted):
            return float("nan")
        span = self.outcome.last_t - self.posted.started
        if not self.drained and self.name == "baseline":
            return self.outcome.objects / span  # one object per event delivered so far
        return n_events / span

    def req_per_event(self, n_events: int) -> float:
        o = self.outcome
        return (o.track_ok + o.track_429 + o.track_other) / n_events if o else float("nan")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class CpuMeter:
    """CPU seconds each component used between ``start()`` and ``stop()``."""

    def __init__(self, parts: dict[str, Callable[[], float]]):
        self.parts = parts
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {k: f() for k, f in self.parts.items()}

    def stop(self) -> None:
        self.wall = time.monotonic() - self._t0
        self.used = {k: f() - self._c0[k] for k, f in self.parts.items()}

    def line(self) -> str:
        total = sum(self.used.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.used.items())
        return (f"{parts} = {total:.1f} CPU-s over {self.wall:.1f} s wall "
                f"({total / self.wall:.2f} of {os.cpu_count()} cores busy)")


class Sampler:
    """Calls ``sample()`` every ``every`` seconds in a thread; keeps (t, dict) rows."""

    def __init__(self, sample: Callable[[], dict[str, Any]], every: float = 0.5):
        self.sample, self.every = sample, every
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.rows.append({"t": time.time(), **self.sample()})
            except Exception as e:  # a sample must never kill the run
                self.rows.append({"t": time.time(), "error": type(e).__name__})
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def meter(ctx: dict[str, Any], *, ingress: int, worker: int) -> CpuMeter:
    return CpuMeter({
        "ingress": lambda: cpu_seconds(ingress),
        "worker": lambda: cpu_seconds(worker),
        "redis": lambda: cpu_seconds(ctx["redis_pid"]),
        "braze sandbox": lambda: cpu_seconds(ctx["sandbox_pid"]),
        "client+sampler": own_cpu,
    })


# ----------------------------------------------------------------------------- linesync

def linesync_drained(r: redis.Redis, keys: Keys) -> bool:
    try:
        last = r.xinfo_stream(keys.webhooks)["last-generated-id"]
        groups = r.xinfo_groups(keys.webhooks)
    except redis.ResponseError:
        return False
    g = next((g for g in groups if g["name"] in (STREAM_GROUP, STREAM_GROUP.encode())), None)
    if g is None or g["pending"] or g["last-delivered-id"] != last:
        return False
    o = outbox.sizes(r, keys)
    return not (o["pending_profiles"] or o["inflight_profiles"] or o["open_batches"])


def count_keys(r: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in r.scan_iter(match=pattern, count=10_000))


def redis_memory(r: redis.Redis, keys: Keys) -> dict[str, int]:
    def usage(key: str) -> int:
        return int(r.memory_usage(key, samples=0) or 0)

    buckets = int(r.hget(keys.state_meta, "buckets") or 1)
    return {"used": int(r.info("memory")["used_memory"]), "stream": usage(keys.webhooks),
            "state": sum(usage(keys.state_bucket(b)) for b in range(buckets)) + usage(keys.state_x),
            "seen": dedupe.size(r, keys, now_ms=int(r.time()[0]) * 1000, ttl_seconds=DEDUPE_TTL)}


def run_linesync(wl: Workload, warm: Workload, ctx: dict[str, Any], res: Result, procs: list[Proc]) -> None:
    from linesync.commands.worker import WORKER_ENV_DEFAULTS, worker_argv

    url = ctx["redis_url"] + "/0"
    r = redis.Redis.from_url(url, socket_timeout=30)
    keys = Keys()
    sandbox: Sandbox = ctx["sandbox"]
    env = clean_env(REDIS_URL=url, LINE_CHANNEL_SECRET=SECRET, BRAZE_REST_ENDPOINT=sandbox.url,
                    BRAZE_API_KEY=API_KEY, BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false",
                    LINESYNC_LOG_LEVEL="WARNING", PYTHONPATH=str(REPO),
                    LINESYNC_WORKER_METRICS_PORT="0")  # a taken port would stop the worker
    env = {**WORKER_ENV_DEFAULTS, **env}  # as `linesync worker` runs it
    port = free_port()
    ingress = Proc("linesync-ingress", [sys.executable, "-m", "linesync.cli", "ingress",
                                        "--bind", f"127.0.0.1:{port}", "--admin-bind", f"127.0.0.1:{free_port()}"],
                   env, ctx["logs"], REPO)
    procs.append(ingress)
    argv = worker_argv(python=sys.executable, loglevel="WARNING", hostname="bench", pid=os.getpid())
    worker = Proc("linesync-worker", argv, env, ctx["logs"], REPO)
    procs.append(worker)
    wait_http(ingress, port, "/healthz")
    wait_celery(worker, url, key_prefix=keys.celery_prefix)

    post_all(port, warm, threads=ctx["threads"])
    if not wait_until(lambda: linesync_drained(r, keys), 60):
        raise RuntimeError(f"linesync warm-up did not drain\n{worker.tail()}")
    time.sleep(0.5)
    sandbox.reset()
    res.rss_start = tree_rss_kb(worker.pid)
    mem0 = redis_memory(r, keys)

    def sample() -> dict[str, Any]:
        info = r.xinfo_groups(keys.webhooks)[0]
        p = r.pipeline(transaction=False)
        p.xlen(keys.webhooks)
        p.hget(keys.state_meta, "dirty")
        p.zcard(keys.outbox_ready)
        p.hlen(keys.outbox_inflight)
        p.hlen(keys.outbox_flying)
        xlen, flagged, alone, inflight, flying = p.execute()
        inflight += flying
        ready = int(flagged or 0) + alone
        rss = tree_rss_kb(worker.pid)[0]
        res.rss_peak = max(res.rss_peak, rss)
        st = sandbox.stats()
        return {"stream_len": xlen, "lag": info.get("lag"), "pending": info["pending"], "outbox": ready,
                "inflight": inflight, "braze_req": st["requests_total"], "objects": st["objects_received"],
                "rss_mb": rss / 1024}

    cpu = meter(ctx, ingress=ingress.pid, worker=worker.pid)
    with Sampler(sample) as sampler:
        cpu.start()
        res.posted = post_all(port, wl, threads=ctx["threads"])
        t0 = time.monotonic()
        res.drained = wait_until(lambda: linesync_drained(r, keys), ctx["deadline"])
        res.drain_seconds = time.monotonic() - t0
        cpu.stop()
        time.sleep(0.5)
    res.timeline = sampler.rows
    res.extra["cpu"] = cpu
    res.rss_end = tree_rss_kb(worker.pid)
    mem1 = redis_memory(r, keys)
    now_ms = int(r.time()[0]) * 1000
    window = dedupe.window(now_ms, DEDUPE_TTL)
    n_ids = dedupe.size(r, keys, now_ms=now_ms, ttl_seconds=DEDUPE_TTL)
    id_bytes = sum(int(r.memory_usage(k, samples=0) or 0)
                   for w in (window, window - 1) for k in r.scan_iter(match=keys.dedupe_window(w) + "*", count=10_000))
    res.extra.update(mem0=mem0, mem1=mem1, seen_key_bytes=id_bytes / max(1, n_ids),
                     stats={k.decode(): int(v) for k, v in r.hgetall(keys.stats).items()})
    res.outcome = evaluate(wl, res.posted.answered, GROUP, sandbox.profiles(), sandbox.requests(0), sandbox.stats())
    if not res.drained:
        res.extra["worker_tail"] = worker.tail()
    worker.stop()
    ingress.stop()
    r.close()


# ----------------------------------------------------------------------------- baseline

def run_baseline(wl: Workload, warm: Workload, ctx: dict[str, Any], res: Result, procs: list[Proc]) -> None:
    url = ctx["redis_url"] + "/1"
    r = redis.Redis.from_url(url, socket_timeout=30)
    sandbox: Sandbox = ctx["sandbox"]
    base_dir = HERE / "baseline"
    # REDIS_URL only for ingress.gunicorn_conf's start-up check of Redis (same server settings
    # as linesync's ingress); the baseline app itself uses BASELINE_BROKER_URL.
    env = clean_env(BASELINE_BROKER_URL=url, REDIS_URL=url, LINE_CHANNEL_SECRET=SECRET, BRAZE_REST_ENDPOINT=sandbox.url,
                    BRAZE_API_KEY=API_KEY, BRAZE_SUBSCRIPTION_GROUP_ID=GROUP,
                    PYTHONPATH=os.pathsep.join([str(base_dir), str(REPO)]))
    port = free_port()
    web = Proc("baseline-web", [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf",
                                "--bind", f"127.0.0.1:{port}", "app:create_app()"], env, ctx["logs"], base_dir)
    procs.append(web)
    worker = Proc("baseline-worker", [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel",
                                      "WARNING", "--concurrency", str(ctx["concurrency"]), "-n", "baseline@%h"],
                  env, ctx["logs"], base_dir)
    procs.append(worker)
    wait_http(web, port, "/line/events", method="POST")
    wait_celery(worker, url)

    def queued() -> int:
        p = r.pipeline(transaction=False)
        p.llen("celery")
        p.hlen("unacked")
        return sum(p.execute())

    def drained(n_expected: int) -> Callable[[], bool]:
        last = {"ok": -1, "since": time.monotonic()}

        def check() -> bool:
            ok = sandbox.track_ok()
            if ok >= n_expected:
                return True
            if ok != last["ok"]:
                last.update(ok=ok, since=time.monotonic())
                return False
            return queued() == 0 and time.monotonic() - last["since"] > 3.0
        return check

    post_all(port, warm, threads=ctx["threads"])
    if not wait_until(drained(warm.n_events), 60):
        raise RuntimeError(f"baseline warm-up did not drain\n{worker.tail()}")
    time.sleep(0.5)
    sandbox.reset()
    res.rss_start = tree_rss_kb(worker.pid)

    def sample() -> dict[str, Any]:
        rss = tree_rss_kb(worker.pid)[0]
        res.rss_peak = max(res.rss_peak, rss)
        st = sandbox.stats()
        return {"queued": queued(), "braze_req": st["requests_total"], "objects": st["objects_received"],
                "rss_mb": rss / 1024}

    cpu = meter(ctx, ingress=web.pid, worker=worker.pid)
    with Sampler(sample) as sampler:
        cpu.start()
        res.posted = post_all(port, wl, threads=ctx["threads"])
        t0 = time.monotonic()
        res.drained = wait_until(drained(wl.n_events), ctx["deadline"], interval=0.5)
        res.drain_seconds = time.monotonic() - t0
        cpu.stop()
    res.timeline = sampler.rows
    res.extra["cpu"] = cpu
    res.rss_end = tree_rss_kb(worker.pid)
    res.extra["queued_at_end"] = queued()
    res.outcome = evaluate(wl, res.posted.answered, GROUP, sandbox.profiles(), sandbox.requests(0), sandbox.stats())
    worker.stop()
    web.stop()
    r.close()


# ----------------------------------------------------------------------------- report

def mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def show_phase(res: Result, wl: Workload) -> None:
    p, o = res.posted, res.outcome
    print(f"\n[{res.name}]")
    if p is None or o is None:
        print("  did not run to the end")
        return
    n = len(p.request_ms)
    print(f"  ingress: {len(wl.bodies):,} bodies POSTed in {p.seconds:.2f} s = {len(wl.bodies) / p.seconds:,.0f} bodies/s"
          f" ({wl.n_events / p.seconds:,.0f} events/s); request p50 {p.request_ms[n // 2]:.1f} ms, "
          f"p99 {p.request_ms[min(n - 1, int(n * 0.99))]:.1f} ms; non-200 {p.non_200}, connection errors {p.errors}")
    drain = "drained" if res.drained else "NOT DRAINED (deadline)"
    span = (o.last_t - p.started) if o.last_t else float("nan")
    print(f"  pipeline: {drain}; last Braze receipt {span:.2f} s after the first POST "
          f"({(o.last_t or p.ended) - p.ended:+.2f} s after the last 200) -> {res.rate(wl.n_events):,.0f} events/s")
    print(f"  braze: {o.track_ok:,} /users/track 2xx, {o.track_429} x 429, {o.track_other} other; "
          f"{o.objects:,} objects ({o.objects / max(1, o.track_ok):.1f}/request); "
          f"{res.req_per_event(wl.n_events):.4f} requests/event (1/{1 / max(1e-9, res.req_per_event(wl.n_events)):.0f}); "
          f"peak {o.max_per_second} requests in one second")
    print(f"  correctness: {o.correct:,}/{wl.users:,} profiles right, {o.wrong:,} wrong state, {o.missing:,} missing")
    print(f"  delivery latency (200 -> Braze receipt, final event per user, n={len(o.latencies_ms):,}): "
          f"p50 {o.pct(0.5):,.0f} ms, p99 {o.pct(0.99):,.0f} ms, max {o.pct(1.0):,.0f} ms"
          f" ({o.before_200} received before their 200)")
    if res.rss_start and res.rss_end:
        print(f"  worker RSS (main + {len(res.rss_start[1]) - 1} pool): after warm-up {mb(res.rss_start[0])}, "
              f"peak {mb(res.rss_peak)}, end {mb(res.rss_end[0])} "
              f"(per process start {[round(x / 1024) for x in res.rss_start[1]]} MB, "
              f"end {[round(x / 1024) for x in res.rss_end[1]]} MB)")
    if o.gaps:
        long_gaps = [g for g in o.gaps if g >= 0.2]
        print(f"  gaps between Braze receipts: largest {', '.join(f'{g * 1000:.0f}' for g in o.gaps[:5])} ms; "
              f"{len(long_gaps)} gaps >= 200 ms totalling {sum(long_gaps):.2f} s")
    stalled = [row for row in res.timeline if row.get("outbox", 0) >= 75 and row.get("inflight") == 0]
    if stalled:
        at = ", ".join(f"{row['t'] - p.started:.1f}" for row in stalled[:8])
        print(f"  samples with >= 75 profiles waiting and no batch in flight: {len(stalled)} of {len(res.timeline)} "
              f"(at {at} s)")
    if "cpu" in res.extra:
        print(f"  CPU seconds, first POST to drained: {res.extra['cpu'].line()}")
    if res.timeline:
        t0 = p.started
        keys = [k for k in res.timeline[0] if k not in ("t", "error")]
        print("  timeline (s since first POST): " + ", ".join(keys))
        last = float("-inf")
        step = max(2.0, (res.timeline[-1]["t"] - res.timeline[0]["t"]) / 15)
        for row in res.timeline:
            if row["t"] - last < step and row is not res.timeline[-1]:
                continue
            last = row["t"]
            vals = " ".join(f"{k}={row[k]:.0f}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}"
                            for k in keys)
            print(f"    {row['t'] - t0:6.1f}  {vals}")
    if "worker_tail" in res.extra:
        print("  worker log tail:\n" + res.extra["worker_tail"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=8, help="load generator threads (keep-alive connections)")
    ap.add_argument("--deadline", type=float, default=200.0,
                    help="longest wait for a stack to drain after the last POST (s)")
    ap.add_argument("--only", choices=("linesync", "baseline"))
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _terminate)

    # The baseline's Celery prefork pool: 8 processes, what linesync's worker ran before its
    # engine (2 consume + 4 deliver pump slots + 2), so the comparison stays the one measured
    # then. linesync's worker is one process now (an engine of threads and 2 task threads).
    concurrency = BASELINE_CONCURRENCY
    from ingress.gunicorn_conf import threads as g_threads, workers as g_workers

    wl = build(args.events, SECRET)
    warm = build(WARMUP_EVENTS, SECRET, tag="warm", seed=11)
    print(f"pipeline benchmark: {wl.n_events:,} follow/unfollow events, {wl.users:,} users, {len(wl.bodies):,} bodies "
          f"of 1-5 events; {os.cpu_count()} CPUs; client {args.threads} threads (keep-alive)")
    print(f"both stacks: gunicorn gthread {g_workers} workers x {g_threads} threads; linesync: one worker process "
          f"(default engine); baseline: Celery prefork concurrency {concurrency}; Braze sandbox process, "
          f"/users/track limit {RATE_LIMIT}, batch 75")

    logs = Path(tempfile.mkdtemp(prefix="linesync-bench-pipeline-"))
    procs: list[Proc] = []
    server = EmbeddedRedis()
    results: dict[str, Result] = {}
    try:
        server.start()
        bport = free_port()
        sandbox_proc = Proc("braze-sandbox", [sys.executable, "-m", "linesync.cli", "sandbox", "braze", "--bind",
                                              f"127.0.0.1:{bport}", "--api-key", API_KEY, "--rate-limit", RATE_LIMIT],
                            clean_env(PYTHONPATH=str(REPO)), logs, REPO)
        procs.append(sandbox_proc)
        wait_http(sandbox_proc, bport, "/_sandbox/health")
        ctx = {"redis_url": server.url.rsplit("/", 1)[0], "sandbox": Sandbox(f"http://127.0.0.1:{bport}"),
               "redis_pid": server.proc.pid, "sandbox_pid": sandbox_proc.pid,
               "logs": logs, "threads": args.threads, "deadline": args.deadline, "concurrency": concurrency}
        phases = [("linesync", run_linesync), ("baseline", run_baseline)]
        for name, fn in phases:
            if args.only and args.only != name:
                continue
            ctx["sandbox"].reset()
            results[name] = Result(name)
            t = time.monotonic()
            fn(wl, warm, ctx, results[name], procs)
            results[name].extra["wall"] = time.monotonic() - t
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process")
        return 130
    finally:
        for p in reversed(procs):
            p.stop(timeout=15)
        server.cleanup()
        if args.keep_logs:
            print(f"\nlogs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)

    for res in results.values():
        show_phase(res, wl)
    return summary(results, wl)


def summary(results: dict[str, Result], wl: Workload) -> int:
    print("\n== summary")
    ls, bl = results.get("linesync"), results.get("baseline")
    n = wl.n_events
    for res in (ls, bl):
        if res and res.outcome:
            o = res.outcome
            print(f"  {res.name:<9} {res.rate(n):>8,.0f} events/s  {res.req_per_event(n):.4f} Braze requests/event  "
                  f"p50/p99 latency {o.pct(0.5):,.0f}/{o.pct(0.99):,.0f} ms  wrong profiles {o.wrong + o.missing:,}  "
                  f"429s {o.track_429}")
    ok = True
    if ls and ls.outcome:
        m0, m1 = ls.extra["mem0"], ls.extra["mem1"]
        seen = m1["seen"] - m0["seen"]
        per = (m1["used"] - m0["used"]) / max(1, seen)
        print(f"  redis: {seen:,} dedupe keys added; used_memory +{(m1['used'] - m0['used']) / 1e6:.1f} MB = "
              f"{per:,.0f} B per deduped event (of which webhook stream {(m1['stream'] - m0['stream']) / max(1, seen):,.0f} B, "
              f"state hash {(m1['state'] - m0['state']) / max(1, seen):,.0f} B); "
              f"one remembered event id: MEMORY USAGE {ls.extra['seen_key_bytes']:.0f} B (the windows' keys / ids); "
              f"stream still holds {m1['stream'] / 1e6:.1f} MB")
        correct = ls.outcome.wrong == 0 and ls.outcome.missing == 0 and ls.drained
        print(f"  linesync correctness: {'PASS' if correct else 'FAIL'} "
              f"({ls.outcome.correct:,}/{wl.users:,} profiles right)")
        ok &= correct
        rpe = ls.req_per_event(n)
        rpe_ok = rpe <= TARGET_REQ_PER_EVENT
        print(f"  target Braze requests/event <= 1/70 ({TARGET_REQ_PER_EVENT:.4f}): {rpe:.4f} -> "
              f"{'PASS' if rpe_ok else 'MISS'}")
        growth = ls.rss_end[0] / ls.rss_start[0] - 1
        flat = growth <= TARGET_RSS_GROWTH
        print(f"  target flat worker memory (end <= +{TARGET_RSS_GROWTH:.0%} of post-warm-up): "
              f"{mb(ls.rss_start[0])} -> {mb(ls.rss_end[0])} ({growth:+.1%}) -> {'PASS' if flat else 'MISS'}")
        ok &= rpe_ok and flat
        if ls.outcome.track_429:
            print(f"  note: the sandbox answered {ls.outcome.track_429} x 429 to linesync (limit {RATE_LIMIT})")
    if ls and bl and ls.outcome and bl.outcome:
        ratio = ls.rate(n) / bl.rate(n)
        speed_ok = ratio >= TARGET_SPEEDUP
        note = "" if bl.drained else " (baseline did not drain: its rate is an upper bound)"
        print(f"  target >= {TARGET_SPEEDUP:g}x the obvious design's events/s: {ls.rate(n):,.0f} / {bl.rate(n):,.0f} = "
              f"{ratio:.2f}x -> {'PASS' if speed_ok else 'MISS'}{note}")
        print(f"  baseline correctness: {bl.outcome.wrong:,} wrong + {bl.outcome.missing:,} missing of {wl.users:,} "
              f"profiles (tasks run concurrently, in no particular order)")
        ok &= speed_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
