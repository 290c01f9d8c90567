"""Fault-injection drills: what linesync does when a part of its world fails.

    .venv/bin/python bench/faults/run.py [--only N] [--quick]

Starts its own embedded Redis (AOF on) and the Braze sandbox (``linesync
sandbox braze``, 3000/3s, batch 75) as separate processes on loopback, then
runs five drills, each against fresh state (FLUSHALL, sandbox reset) with its
own Celery worker processes (``celery -A workers worker``; beat for drill 2).
Webhook bodies are put on the stream directly, as the ingress would (XADD).

1. Worker SIGKILL under load: 2 workers x 16 senders, Braze 150 ms; 50,000
   follow/unfollow events for 20,000 users (newest timestamp decides, bodies of
   5 events, shuffled). Once undisturbed (baseline), once with one worker's
   process group SIGKILLed when 30 % of the baseline's objects are delivered:
   total time, when the dead worker's open batches (60 s lease) and stream
   entries (15 s worker lease) were taken over, profiles whose final Braze
   state is not their newest event's, dead letters.
2. Redis restart: 1 worker + beat; Redis stopped for 30 s and started again
   (same port and directory, AOF). Are both processes still running, and how
   long from Redis being back until a webhook enqueued then reaches Braze.
3. Braze outage: every /users/track answered 503 for 120 s while 1,000
   profiles wait, then healthy: requests Braze got meanwhile (the batches in
   flight, then one probe at least every 15 s), seconds from healthy to the
   first 2xx and to all delivered, dead letters.
4. Braze's limit below linesync's: the sandbox takes 100/1s, linesync is set
   to 3000/3s; 20,000 profiles (loaded under a pause, then released) through 2
   workers at 150 ms: 429s; per Braze window, how long requests kept arriving
   after its first 429, and how many were sent more than 0.3 s after it (0 =
   every worker paused); time to deliver all.
5. Poison and bad input: a body with a lone surrogate escape, 199 good bodies
   (5,000 users), a body dated 10**15 ms; 3 of the users poisoned in the
   sandbox (whole-request 400). Dead letters by kind must be exactly the 2
   bodies and the 3 users; everyone else delivered.

``--quick`` divides the sizes by 5 and shortens the outages (Redis 10 s, Braze
30 s). Prints one or two lines per drill, then a summary table; exit status 0
when every drill's check passed. Worker logs go to a temp dir, kept and tailed
on failure. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from linesync.commands.send_test_webhook import user_event  # noqa: E402
from linesync.commands.worker import WORKER_ENV_DEFAULTS  # noqa: E402
from workers import BEAT_SCHEDULER  # noqa: E402
from shared import dlq, outbox, webhook_queue  # noqa: E402
from shared.clock import SystemClock, now_ms  # noqa: E402
from shared.config import parse_rate  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.limiter import TRACK, Limiter  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_delivery", HERE.parent / "delivery" / "run.py")
delivery = sys.modules["bench_delivery"] = importlib.util.module_from_spec(_spec)  # clean_env, spawn, stop, ...
_spec.loader.exec_module(delivery)
http, spawn, stop, tail = delivery.http, delivery.spawn, delivery.stop, delivery.tail

API_KEY, GROUP = delivery.API_KEY, delivery.GROUP
RATE_LIMIT, BATCH, LATENCY_MS = "3000/3s", 75, 150
# Drill 4: how long (s) after a 429 a request may still be sent. A sender that already holds a limiter slot
# (reserved ahead and slept for, workers/sending.py) sends it even if a pause came meanwhile: with 2 x 64
# senders at linesync's 1 ms spacing, up to ~0.13 s; the rest is the answer reaching the worker.
REACT = 0.3
KEYS = Keys()


def uid(i: int) -> str:
    return f"U{i:032x}"


def body(events: list[dict]) -> bytes:
    return json.dumps({"destination": "Ufaults", "events": events}).encode()


def follows(users: list[str], ts: int, per: int) -> list[bytes]:
    return [body([user_event("follow", u, ts) for u in users[i:i + per]]) for i in range(0, len(users), per)]


def enqueue_all(r: redis.Redis, bodies: list[bytes]) -> list[str]:
    """XADD every body as shared.webhook_queue.enqueue does, pipelined; their stream ids."""
    webhook_queue.ensure_group(r, KEYS)
    ids: list[str] = []
    for i in range(0, len(bodies), 1000):
        p = r.pipeline(transaction=False)
        for b in bodies[i:i + 1000]:
            p.xadd(KEYS.webhooks, {webhook_queue.BODY_FIELD: b, webhook_queue.RECEIVED_FIELD: str(now_ms(SystemClock()))})
        ids += [x.decode() for x in p.execute()]
    return ids


def settled(r: redis.Redis) -> bool:
    """Every stored body applied (entries are deleted as they are) and the outbox empty everywhere."""
    return r.xlen(KEYS.webhooks) == 0 and not any(outbox.sizes(r, KEYS).values())


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until ``check()`` held, or None after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


def braze_states(braze: str) -> dict[str, str | None]:
    """alias_name -> subscription state in GROUP, for every profile in the sandbox."""
    out = {}
    for p in http(braze, "/_sandbox/profiles")["profiles"]:
        for a in p["aliases"]:
            out[a["alias_name"]] = p["subscription_groups"].get(GROUP)
    return out


def profiles(braze: str) -> int:
    return http(braze, "/_sandbox/stats")["profiles"]


def track_log(braze: str) -> list[dict]:
    return [e for e in http(braze, "/_sandbox/requests")["requests"] if e["path"] == "/users/track"]


class Drills:
    def __init__(self, braze: str, server: EmbeddedRedis, logs: Path, quick: bool):
        self.braze, self.server, self.logs, self.quick = braze, server, logs, quick
        self.r = redis.Redis.from_url(server.url, socket_timeout=60)
        self.procs: list[subprocess.Popen] = []  # every process a drill started: main stops what is left
        self.wlogs: list[Path] = []

    def n(self, full: int) -> int:
        return max(1, full // 5) if self.quick else full

    def fresh(self, latency_ms: float = 0) -> None:
        self.r.flushall()
        http(self.braze, "/_sandbox/reset", {})
        http(self.braze, "/_sandbox/faults", {"latency_ms": latency_ms})

    def env(self, redis_url: str | None = None, **extra: str) -> dict[str, str]:
        return {**WORKER_ENV_DEFAULTS, **delivery.clean_env(
            REDIS_URL=redis_url or self.server.url, BRAZE_REST_ENDPOINT=self.braze, BRAZE_API_KEY=API_KEY,
            BRAZE_SUBSCRIPTION_GROUP_ID=GROUP, RESYNC_ON_START="false", LINESYNC_WORKER_METRICS_PORT="0",
            LINESYNC_BEAT_METRICS_PORT="0", **extra)}

    def start(self, tag: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.logs / f"{tag}.log"
        self.wlogs.append(log)
        p = spawn([sys.executable, "-m", "celery", "-A", "workers", *argv, "--loglevel", "INFO"], env, log)
        self.procs.append(p)
        return p

    def workers(self, tag: str, count: int, r: redis.Redis | None = None, **env: str) -> list[subprocess.Popen]:
        """``count`` worker processes, once every engine has registered in Redis (``r``: another Redis)."""
        r = r or self.r
        kw = r.connection_pool.connection_kwargs
        worker_env = self.env(f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}", **env)
        procs = [self.start(f"{tag}-w{i}", ["worker", "-n", f"{tag}{i}@%h", "--without-gossip", "--without-mingle",
                                            "--without-heartbeat"], worker_env) for i in range(count)]
        wait_for(lambda: r.zcard(KEYS.workers) >= count or any(p.poll() is not None for p in procs), 90)
        if r.zcard(KEYS.workers) < count or any(p.poll() is not None for p in procs):
            stop(procs)
            raise RuntimeError(f"{tag}: workers did not start\n" + "\n".join(tail(w) for w in self.wlogs[-count:]))
        return procs

    def show_logs(self) -> None:
        for w in self.wlogs:
            print(f"  --- tail of {w}\n{tail(w, 20)}")

    # ------------------------------------------------------------------------- 1

    def kill(self) -> tuple[bool, str]:
        n_users, n_events = self.n(20_000), self.n(50_000)
        rng = random.Random(1)
        base = now_ms(SystemClock()) - 3_600_000  # in the past: the timestamp itself orders them
        owners = list(range(n_users)) + [rng.randrange(n_users) for _ in range(n_events - n_users)]
        events, newest = [], {}
        for i, u in enumerate(owners):  # timestamps grow with i: the last kind drawn for a user is its newest
            kind = "follow" if rng.random() < 0.6 else "unfollow"
            events.append(user_event(kind, uid(u), base + i))
            newest[uid(u)] = "subscribed" if kind == "follow" else "unsubscribed"
        rng.shuffle(events)
        bodies = [body(events[i:i + 5]) for i in range(0, n_events, 5)]
        print(f"  {n_events:,} events for {n_users:,} users ({sum(v == 'subscribed' for v in newest.values()):,} "
              f"end subscribed) in {len(bodies):,} bodies; 2 workers x 16 senders, Braze {LATENCY_MS} ms")
        runs: dict[bool, dict[str, Any]] = {}
        for killing in (False, True):  # the kill comes at 30 % of the objects the undisturbed run delivered
            self.fresh(LATENCY_MS)
            procs = self.workers("kill" if killing else "base", 2, LINESYNC_DELIVERY_CONCURRENCY="16")
            victim = procs[0]
            dead = next((m.decode() for m in self.r.zrange(KEYS.workers, 0, -1) if f":{victim.pid}:" in m.decode()), "")
            if not dead:  # engine names are host:pid:random (workers/engine.py)
                stop(procs)
                raise RuntimeError(f"no engine registered for worker pid {victim.pid}")
            f: dict[str, Any] = {}
            try:
                t0 = time.monotonic()
                enqueue_all(self.r, bodies)
                while time.monotonic() - t0 < 300:
                    now = time.monotonic()
                    if killing and "killed" not in f and self._sent() >= 0.3 * runs[False]["objects"]:
                        f["share"] = self._sent() / runs[False]["objects"]
                        f["open"] = set(self.r.hkeys(KEYS.batches))
                        f["pending"] = self._pending(dead)
                        os.killpg(victim.pid, signal.SIGKILL)
                        victim.wait(10)
                        f["killed"] = now = time.monotonic()
                    if "killed" in f:
                        left = f["open"] & set(self.r.hkeys(KEYS.batches))
                        if "left2" not in f and now - f["killed"] >= 2:
                            f["left2"] = len(left)
                        if "batches_back" not in f and not left:
                            f["batches_back"] = now - f["killed"]
                        if "stream_back" not in f and self._pending(dead) == 0:
                            f["stream_back"] = now - f["killed"]
                    if settled(self.r):
                        break
                    time.sleep(0.01 if "killed" not in f else 0.2)
                f["secs"] = time.monotonic() - t0
                f["done"], f["objects"] = settled(self.r), self._sent()
            finally:
                stop(procs)
            states = braze_states(self.braze)
            f["wrong"] = sum(states.get(u) != s for u, s in newest.items())
            f["dlq"] = self.r.xlen(KEYS.dlq)
            runs[killing] = f
            head = "undisturbed" if not killing else f"SIGKILL at {f.get('share', 0):.0%} of the objects sent"
            print(f"  {head}: {'all settled' if f['done'] else 'NOT settled'} in {f['secs']:.1f} s; "
                  f"{f['objects']:,} objects sent; profiles wrong {f['wrong']:,} of {n_users:,}; "
                  f"dead letters {f['dlq']}")
        k, b = runs[True], runs[False]
        if "killed" in k:
            print(f"  after the kill: {len(k['open'])} batches open, {k.get('left2', '?')} still open 2 s later "
                  f"(the dead worker's), the last one finished {_s(k.get('batches_back'))} after the kill "
                  f"(batch lease 60 s); " + (f"its {k['pending']} pending stream entries taken over after "
                  f"{_s(k.get('stream_back'))} (worker lease 15 s)" if k["pending"] else
                  "it held no stream entries (all consumed)") + f"; {k['secs'] - b['secs']:+.1f} s vs undisturbed")
        ok = all(f["done"] and f["wrong"] == 0 and f["dlq"] == 0 for f in runs.values()) and "killed" in k
        return ok, (f"{b['secs']:.1f} s undisturbed, {k['secs']:.1f} s with a SIGKILL at "
                    f"{k.get('share', 0):.0%}; dead share resent {_s(k.get('batches_back'))} after; "
                    f"wrong {b['wrong'] + k['wrong']}, DLQ {b['dlq'] + k['dlq']}")

    def _sent(self) -> int:
        """Objects Braze has accepted so far (the finish script counts them)."""
        return int(self.r.hget(KEYS.stats, "delivered_objects") or 0)

    def _pending(self, dead: str) -> int:
        """Stream entries still pending in the consumers of worker ``dead``."""
        try:
            return sum(c["pending"] for c in self.r.xinfo_consumers(KEYS.webhooks, "workers")
                       if c["name"].decode().startswith(dead + "/"))
        except redis.ResponseError:
            return 0

    # ------------------------------------------------------------------------- 2

    def redis_restart(self) -> tuple[bool, str]:
        down = 10 if self.quick else 30
        self.fresh()
        server = EmbeddedRedis().start()  # its own: the outage must not touch the shared one
        r = redis.Redis.from_url(server.url, socket_timeout=10)
        env = self.env(server.url, BRAZE_FLUSH_DELAY_MS="100")
        f: dict[str, Any] = {"deliver": None, "lock": None}
        procs: list[subprocess.Popen] = []
        try:
            procs = self.workers("blip", 1, r=r, BRAZE_FLUSH_DELAY_MS="100")
            procs.append(self.start("blip-beat", ["beat", "-S", BEAT_SCHEDULER], env))
            worker, beat = procs
            if wait_for(lambda: r.exists(KEYS.redbeat_lock), 60) is None:
                raise RuntimeError("beat took no lock\n" + tail(self.wlogs[-1]))
            enqueue_all(r, [body([user_event("follow", uid(1), 1_000)])])
            if wait_for(lambda: delivery.subscription(self.braze, uid(1)) == "subscribed", 60) is None:
                raise RuntimeError("no delivery before the outage")
            server.stop()
            time.sleep(down)
            f["during"] = worker.poll() is None and beat.poll() is None
            server.start()  # same port and directory: AOF brings the data back
            t_back = time.monotonic()
            r = redis.Redis.from_url(server.url, socket_timeout=10)
            enqueue_all(r, [body([user_event("follow", uid(2), 2_000)])])
            last_ttl = r.pttl(KEYS.redbeat_lock)  # -2: gone; it came back from the AOF with what was left of it
            while time.monotonic() - t_back < 90 and None in (f["deliver"], f["lock"]):
                if f["deliver"] is None and delivery.subscription(self.braze, uid(2)) == "subscribed":
                    f["deliver"] = time.monotonic() - t_back
                ttl = r.pttl(KEYS.redbeat_lock)
                if f["lock"] is None and ttl > last_ttl + 1000:  # taken again or extended: beat is ticking
                    f["lock"] = time.monotonic() - t_back
                last_ttl = ttl
                time.sleep(0.1)
            time.sleep(5)  # a few beat ticks and heartbeats after the outage
            f["after"] = worker.poll() is None and beat.poll() is None
        finally:
            stop(procs)
            server.cleanup()
        yes = {True: "yes", False: "NO"}
        print(f"  Redis down {down} s: worker and beat running during it {yes[f['during']]}, 5 s after the "
              f"restart {yes[f['after']]}; webhook enqueued on restart in Braze after {_s(f['deliver'])}; "
              f"beat renewed its lock after {_s(f['lock'])}")
        ok = f["during"] and f["after"] and f["deliver"] is not None and f["lock"] is not None
        return ok, f"both alive {yes[f['during'] and f['after']]}; Redis back -> Braze {_s(f['deliver'])}"

    # ------------------------------------------------------------------------- 3

    def outage(self) -> tuple[bool, str]:
        n, outage = self.n(1_000), 30 if self.quick else 120
        self.fresh()
        procs = self.workers("outage", 1)
        try:
            http(self.braze, "/_sandbox/faults", {"status": 503, "count": -1})
            t_fault = time.time()
            enqueue_all(self.r, follows([uid(i) for i in range(n)], 1_000, 5))
            time.sleep(max(0.0, t_fault + outage - time.time()))
            http(self.braze, "/_sandbox/faults", {"clear": True})
            t_ok = time.time()
            all_in = wait_for(lambda: settled(self.r) and profiles(self.braze) >= n, 120)
        finally:
            stop(procs)
        log = track_log(self.braze)
        during = [e["t"] for e in log if t_fault <= e["t"] < t_ok]
        first_ok = min((e["t"] for e in log if e["t"] >= t_ok and 200 <= e["status"] < 300), default=math.nan) - t_ok
        burst = [t for t in during if t < during[0] + 2] if during else []
        probes = during[len(burst):]
        gaps = [b - a for a, b in zip(during[len(burst) - 1:], during[len(burst):])] if probes else []
        dl = self.r.xlen(KEYS.dlq)
        print(f"  {outage} s of 503s with {n:,} profiles waiting: Braze got {len(during)} requests "
              f"({len(burst)} in the first 2 s, the batches already out, then {len(probes)} probes at most "
              f"{max(gaps, default=math.nan):.1f} s apart)")
        print(f"  healthy again -> first 2xx after {first_ok:.1f} s, all {n:,} delivered after {_s(all_in)}; "
              f"dead letters {dl}")
        ok = all_in is not None and dl == 0 and first_ok <= 16 and max(gaps, default=0) <= 16
        return ok, (f"{len(during)} requests in {outage} s ({len(probes)} probes); first 2xx {first_ok:.1f} s, "
                    f"all {_s(all_in)} after healthy; DLQ {dl}")

    # ------------------------------------------------------------------------- 4

    def rate_limit(self) -> tuple[bool, str]:
        n, lat = self.n(20_000), LATENCY_MS / 1000
        self.fresh(LATENCY_MS)
        http(self.braze, "/_sandbox/config", {"rate_limit": "100/1s"})
        limiter = Limiter(self.r, KEYS, TRACK, parse_rate(RATE_LIMIT))
        limiter.pause(delivery.redis_ms(self.r) + 600_000, "drill: loading", "rate_limit",
                      now_ms=delivery.redis_ms(self.r))
        procs: list[subprocess.Popen] = []
        try:
            procs = self.workers("ratelimit", 2, BRAZE_TRACK_RATE_LIMIT=RATE_LIMIT)
            enqueue_all(self.r, follows([uid(i) for i in range(n)], 1_000, 5))
            if wait_for(lambda: self.r.xlen(KEYS.webhooks) == 0 and outbox.sizes(self.r, KEYS)["pending_profiles"] >= n, 120) is None:
                raise RuntimeError(f"{n:,} profiles not queued: {outbox.sizes(self.r, KEYS)}")
            limiter.clear_pause()
            t_rel = time.time()
            secs = wait_for(lambda: settled(self.r) and profiles(self.braze) >= n, 300)
        finally:
            stop(procs)
            http(self.braze, "/_sandbox/config", {"rate_limit": RATE_LIMIT})
        log = [e for e in track_log(self.braze) if e["t"] >= t_rel]
        n429 = sum(e["status"] == 429 for e in log)
        # Per 1 s window of Braze's: after its first 429, requests still arrive that were sent before the
        # answer got back (the sandbox stamps a request after its latency). One stamped later than that 429
        # + latency + REACT, still inside the window, was sent at least REACT after it: a worker not paused.
        windows: dict[int, list[dict]] = {}
        for e in log:
            windows.setdefault(math.floor(e["t"]), []).append(e)
        tails, late = [], 0
        for w, es in windows.items():
            first = min((e["t"] for e in es if e["status"] == 429), default=None)
            if first is not None:
                tails.append(max(e["t"] for e in es) - first)
                late += sum(e["t"] > first + lat + REACT for e in es)
        dl = self.r.xlen(KEYS.dlq)
        print(f"  Braze 100/1s, linesync {RATE_LIMIT}, {n:,} profiles, 2 workers at {LATENCY_MS} ms: "
              f"{'all delivered' if secs is not None else 'NOT all delivered'} in {_s(secs)} over {len(windows)} "
              f"of Braze's 1 s windows (at its 7,500 profiles/s: {n / BATCH / 100:.1f} s); dead letters {dl}")
        print(f"  429s {n429} in {len(tails)} windows; after a window's first 429, requests kept arriving for at "
              f"most {max(tails, default=0):.2f} s ({lat:.2f} s of it Braze's latency); sent > {REACT} s after "
              f"it: {late} (0 = every worker paused)")
        ok = secs is not None and late == 0 and dl == 0
        return ok, (f"{n429} 429s; requests for <= {max(tails, default=0):.2f} s after a window's first 429, "
                    f"{late} sent later; all delivered in {_s(secs)}")

    # ------------------------------------------------------------------------- 5

    def poison(self) -> tuple[bool, str]:
        n = self.n(5_000)
        users = [uid(i) for i in range(n)]
        poisoned = {users[n // 4], users[n // 2], users[3 * n // 4]}
        self.fresh()
        http(self.braze, "/_sandbox/faults", {"poison_ids": sorted(poisoned), "poison_mode": "400"})
        surrogate = b'{"destination":"U","events":[{"type":"follow","timestamp":1,' \
                    b'"source":{"type":"user","userId":"U\\ud800"}}]}'
        good = [body([user_event("follow", u, 1_000) for u in users[i * n // 199:(i + 1) * n // 199]])
                for i in range(199)]
        future = body([user_event("follow", uid(10**9), 10**15)])
        procs = self.workers("poison", 1)
        try:
            ids = enqueue_all(self.r, [surrogate, *good, future])
            secs = wait_for(lambda: settled(self.r) and profiles(self.braze) >= n - len(poisoned), 120)
        finally:
            stop(procs)
        letters = dlq.list_letters(self.r, KEYS, count=1000)
        by_kind: dict[str, int] = {}
        for letter in letters:
            by_kind[letter.kind] = by_kind.get(letter.kind, 0) + 1
        hooks = {letter.payload.get("stream_id") for letter in letters if letter.kind == "webhook"}
        tracked = {letter.payload.get("user") for letter in letters if letter.kind == "track"}
        states = braze_states(self.braze)
        delivered = sum(states.get(u) == "subscribed" for u in users if u not in poisoned)
        print(f"  {len(good)} good bodies ({n:,} users, 3 poisoned) between a lone-surrogate body and one dated "
              f"10**15 ms: settled after {_s(secs)}; {delivered:,} of {n - 3:,} others delivered; dead letters "
              + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
        for k, v in dlq.summary(self.r, KEYS).items():
            if k != "total":
                print(f"    {v} x {k}")
        ok = (hooks == {ids[0], ids[-1]} and tracked == poisoned and len(letters) == 5 and delivered == n - 3
              and not poisoned & states.keys())
        return ok, (f"DLQ {', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))} (exactly the 2 bodies and "
                    f"3 poisoned: {'yes' if ok else 'NO'}); {delivered:,}/{n - 3:,} others delivered")


def _s(secs: float | None) -> str:
    return "never" if secs is None else f"{secs:.1f} s"


DRILLS = {1: ("worker SIGKILL under load", Drills.kill), 2: ("Redis restart", Drills.redis_restart),
          3: ("Braze outage", Drills.outage), 4: ("Braze rate limit below linesync's", Drills.rate_limit),
          5: ("poison and bad input", Drills.poison)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", type=int, choices=sorted(DRILLS), help="run this drill alone")
    ap.add_argument("--quick", action="store_true", help="sizes / 5, shorter outages")
    args = ap.parse_args()

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _terminate)

    logs = Path(tempfile.mkdtemp(prefix="linesync-bench-faults-"))
    server = EmbeddedRedis()
    sandbox: list[subprocess.Popen] = []
    drills: Drills | None = None
    rows: list[tuple[int, str, bool, str]] = []
    print(f"fault drills{' (--quick)' if args.quick else ''}: {os.cpu_count()} CPUs shared by Redis, "
          f"the Braze sandbox, the workers and this process")
    try:
        server.start()
        proc, braze = delivery.start_sandbox("braze", ["--api-key", API_KEY, "--rate-limit", RATE_LIMIT,
                                                       "--batch-size", str(BATCH)], logs / "braze.log")
        sandbox.append(proc)
        drills = Drills(braze, server, logs, args.quick)
        for num, (title, drill) in DRILLS.items():
            if args.only and num != args.only:
                continue
            print(f"\n[{num}] {title}")
            drills.wlogs = []
            t0 = time.monotonic()
            try:
                ok, line = drill(drills)
            except (RuntimeError, redis.RedisError, OSError) as e:
                ok, line = False, f"FAILED: {type(e).__name__}: {e}"
                print(f"  {line}")
            print(f"  ({time.monotonic() - t0:.0f} s)")
            if not ok:
                drills.show_logs()
            rows.append((num, title, ok, line))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process")
        return 130
    finally:
        stop([p for p in (drills.procs if drills else []) + sandbox if p.poll() is None])
        server.cleanup()
    print("\n| # | drill | figures | check |\n|---|---|---|---|")
    for num, title, ok, line in rows:
        print(f"| {num} | {title} | {line} | {'pass' if ok else 'FAIL'} |")
    all_ok = bool(rows) and all(ok for *_, ok, _ in rows)
    if all_ok:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"logs kept in {logs}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
