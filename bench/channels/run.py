"""Fairness between channels: does a big backlog in one channel delay another channel's live webhooks?

    .venv/bin/python bench/channels/run.py [--backlog 20000] [--probes 20] [--rate 100/1s]
                                           [--latency-ms 100] [--concurrency 16] [--workspaces same|separate]
                                           [--live-channels 1]
    .venv/bin/python bench/channels/run.py --throughput [--events 20000] [--channels 10]

One worker engine in this process serving two channels (``LINESYNC_CHANNELS_FILE`` semantics,
workers/lanes.py), an embedded Redis, the Braze sandbox in-process (``--latency-ms`` per
request). Channel ``bulk`` gets ``--backlog`` follows at once (a resync-sized burst: its
outbox fills); then, while it drains, channel ``live`` receives ``--probes`` single-follow
webhooks, one every 0.5 s. Printed: for each live probe the time from queueing its body to
its profile being in Braze (the sandbox's receipt), p50 and max; the same probes with no
backlog (the baseline); and how long the backlog took to drain. ``--workspaces same``: both
channels in one Braze workspace, sharing its limiter (``--rate``), the harder case;
``separate``: two workspaces (two sandboxes, two API keys, two limiters).

``--live-channels N``: N live channels (``live0``…), the probes taking turns; p99 is printed too.

``--resync N``: the backlog is a real follower resync of N followers in channel ``bulk``
(workers.resync.Resync over pages made in this process, 1,000 ids each, run in a thread
beside the engine) instead of a burst of follow webhooks; the probes start once the run has
listed a tenth of them, and the drain figure is how many the workspace delivered meanwhile.

``--throughput``: ``--events`` follows (200 per body) spread evenly over ``--channels``
channels, each its own workspace and sandbox, then over one channel: events/s from the first
body queued to the last profile in Braze, for both.

Not a test: the figures depend on the machine (everything shares it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis  # noqa: E402

from sandboxes.braze import BrazeSandbox  # noqa: E402
from shared import channels, webhook_queue  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from workers import lanes, runtime  # noqa: E402
from workers.engine import Engine  # noqa: E402

TABLE = """
[channels.{name}]
line_channel_secret = "s-{name}"
line_channel_access_token = "t-{name}"
braze_rest_endpoint = "{url}"
braze_api_key = "{key}"
braze_subscription_group_id = "sg-{name}"
braze_track_rate_limit = "{rate}"
"""


def body(users: list[str], ts: int, dest: str = "Ubot") -> bytes:
    return json.dumps({"destination": dest, "events": [
        {"type": "follow", "timestamp": ts, "mode": "active", "webhookEventId": f"e-{u}-{ts}",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


class Deployment:
    """An embedded Redis, Braze sandboxes, and one engine serving the channels ``{name: sandbox}``."""

    def __init__(self, boxes: dict[str, BrazeSandbox], *, rate: str, concurrency: int, latency_ms: float):
        self.server = EmbeddedRedis().start()
        self.boxes = boxes
        for b in set(boxes.values()):
            b.set_faults(latency_ms=latency_ms)
        text = "".join(TABLE.format(name=n, url=b.url, key=b.api_key, rate=rate) for n, b in boxes.items())
        base = Settings(redis_url=self.server.url, channels_file="bench", delivery_concurrency=concurrency,
                        worker_metrics_port=0, flush_delay_ms=200, resync_on_start=False)
        settings = base.replace(channel_table=channels.parse(text, base, {}))
        self.r = redis.Redis.from_url(self.server.url)
        rt = runtime.build(settings)
        ls = lanes.of(rt)
        self.keys = {ln.name: ln.channel.keys for ln in ls}
        for k in self.keys.values():
            webhook_queue.ensure_group(self.r, k)
        self.engine = Engine(rt, lanes=[(ln.name, ln.rt, ()) for ln in ls], concurrency=concurrency).start()

    def close(self) -> None:
        self.engine.stop()
        for b in set(self.boxes.values()):
            b.stop()
        self.server.cleanup()


def sandbox(key: str) -> BrazeSandbox:
    return BrazeSandbox(api_key=key, rate_limit="100000/1s").start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=20000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--rate", default="100/1s", help="Braze /users/track limit of each workspace")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workspaces", choices=("same", "separate"), default="same")
    ap.add_argument("--live-channels", type=int, default=1)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--resync", type=int, default=0, help="followers of a real resync in channel bulk")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--channels", type=int, default=10)
    a = ap.parse_args()
    if a.throughput:
        return throughput(a)
    bulk = sandbox("k-bulk")
    boxes = {"bulk": bulk}
    for i in range(a.live_channels):
        boxes[f"live{i}"] = bulk if a.workspaces == "same" else sandbox(f"k-live{i}")
    d = Deployment(boxes, rate=a.rate, concurrency=a.concurrency, latency_ms=a.latency_ms)
    live = [n for n in boxes if n != "bulk"]
    try:
        base_lat = probe(d, live, a.probes, "base")
        t0 = time.monotonic()
        if a.resync:
            a.backlog = a.resync
            run = start_resync(d, a.resync)
            lat = probe(d, live, a.probes, "load")
            listed = resync_followers(d)
            run.join()
        else:
            users = [f"Ubulk{i:027x}" for i in range(a.backlog)]
            for i in range(0, len(users), 200):
                webhook_queue.enqueue(d.r, d.keys["bulk"], body(users[i:i + 200], 1000))
            time.sleep(1.0)  # the backlog is in the outbox
            lat = probe(d, live, a.probes, "load")
        while _profiles(bulk, "sg-bulk") < a.backlog and time.monotonic() - t0 < (600 if not a.resync else 0):
            time.sleep(0.5)
        drain = time.monotonic() - t0
        delivered = _profiles(bulk, "sg-bulk")
    finally:
        d.close()
    print(f"workspaces {a.workspaces}, limit {a.rate} each, Braze latency {a.latency_ms:.0f} ms, "
          f"concurrency {a.concurrency} (split per channel), live channels {len(live)}")
    print(f"live follow -> Braze, without backlog: {_summary(base_lat)}")
    what = f"a resync of {a.resync:,} followers" if a.resync else f"a bulk backlog of {a.backlog:,}"
    print(f"live follow -> Braze, during {what}: {_summary(lat)}")
    if a.resync:
        print(f"the resync had listed {listed:,} followers when the probes ended; {delivered:,} delivered "
              f"in {drain:.1f} s ({delivered / drain:,.0f} profiles/s)")
    else:
        print(f"bulk backlog drained in {drain:.1f} s ({a.backlog / drain:,.0f} profiles/s)")
    return 0


def throughput(a) -> int:
    out = {}
    for n in (a.channels, 1):
        boxes = {f"c{i}": sandbox(f"k{i}") for i in range(n)}
        d = Deployment(boxes, rate="100000/1s", concurrency=a.concurrency, latency_ms=a.latency_ms)
        try:
            per = a.events // n
            t0 = time.monotonic()
            for i, name in enumerate(boxes):
                users = [f"U{i:04x}{j:028x}" for j in range(per)]
                for k in range(0, per, 200):
                    webhook_queue.enqueue(d.r, d.keys[name], body(users[k:k + 200], 1000))
            while sum(b.stats()["objects_received"] for b in boxes.values()) < per * n:
                if time.monotonic() - t0 > 600:
                    raise SystemExit("not delivered in 600 s")
                time.sleep(0.1)
            out[n] = per * n / (time.monotonic() - t0)
        finally:
            d.close()
    for n, rate in out.items():
        print(f"{n:>2} channel(s): {a.events:,} follows through the pipeline at {rate:,.0f} events/s "
              f"(Braze latency {a.latency_ms:.0f} ms, concurrency {a.concurrency})")
    return 0


class _Pages:
    """LINE's follower list made in this process: pages of 1,000 ids, token = offset."""

    def __init__(self, n: int):
        self.n = n

    def followers_ids(self, start: str | None = None, limit: int = 1000):
        lo = int(start or 0)
        hi = min(self.n, lo + limit)
        return [f"Ursync{i:027x}" for i in range(lo, hi)], (str(hi) if hi < self.n else None)

    def friends_estimate(self, at: float) -> int | None:
        return self.n


def start_resync(d: Deployment, n: int) -> threading.Thread:
    """A real resync of ``n`` followers into channel bulk's keys, in a thread; returns once a tenth is listed."""
    from shared.clock import SystemClock, now_ms
    from workers import resync

    keys = d.keys["bulk"]
    clock = SystemClock()
    resync.start(d.r, keys, reason="bench", now_ms=now_ms(clock), mark_missing=False)
    rs = resync.Resync(d.r, keys, _Pages(n), clock, run_seconds=24 * 3600)
    t = threading.Thread(target=rs.run_chunk, daemon=True)
    t.start()
    while resync_followers(d) < n // 10 and t.is_alive():
        time.sleep(0.05)
    return t


def resync_followers(d: Deployment) -> int:
    from workers import resync

    run = resync.load(d.r, d.keys["bulk"])
    return run.followers if run else 0


def _summary(lat: list[float]) -> str:
    q = sorted(lat)
    p99 = q[min(len(q) - 1, int(round(0.99 * (len(q) - 1))))]
    return f"p50 {statistics.median(q):.2f} s, p99 {p99:.2f} s, max {q[-1]:.2f} s ({len(q)} probes)"


def _profiles(box: BrazeSandbox, group: str) -> int:
    return sum(1 for p in box.profiles() if p.get("subscription_groups", {}).get(group) == "subscribed")


def probe(d: Deployment, live: list[str], n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        name = live[i % len(live)]
        user = f"U{tag}{i:028x}"[:33]
        t = time.monotonic()
        webhook_queue.enqueue(d.r, d.keys[name], body([user], 2000 + i))
        while d.boxes[name].subscription_state(f"sg-{name}", alias_name=user, alias_label="line_id") != "subscribed":
            if time.monotonic() - t > 120:
                raise SystemExit(f"probe {user} not delivered in 120 s")
            time.sleep(0.01)
        out.append(time.monotonic() - t)
        time.sleep(max(0.0, 0.5 - out[-1]))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
