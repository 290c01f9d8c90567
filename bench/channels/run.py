"""Fairness between channels: does a big backlog in one channel delay another channel's live webhooks?

    .venv/bin/python bench/channels/run.py [--backlog 20000] [--probes 20] [--rate 100/1s]
                                           [--latency-ms 100] [--concurrency 16] [--workspaces same|separate]

One worker engine in this process serving two channels (``LINESYNC_CHANNELS_FILE`` semantics,
workers/lanes.py), an embedded Redis, the Braze sandbox in-process (``--latency-ms`` per
request). Channel ``bulk`` gets ``--backlog`` follows at once (a resync-sized burst: its
outbox fills); then, while it drains, channel ``live`` receives ``--probes`` single-follow
webhooks, one every 0.5 s. Printed: for each live probe the time from queueing its body to
its profile being in Braze (the sandbox's receipt), p50 and max; the same probes with no
backlog (the baseline); and how long the backlog took to drain. ``--workspaces same``: both
channels in one Braze workspace, sharing its limiter (``--rate``), the harder case;
``separate``: two workspaces (two sandboxes, two API keys, two limiters).

Not a test: the figures depend on the machine (everything shares it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def body(users: list[str], ts: int) -> bytes:
    return json.dumps({"destination": "Ubot", "events": [
        {"type": "follow", "timestamp": ts, "mode": "active", "webhookEventId": f"e-{u}-{ts}",
         "source": {"type": "user", "userId": u}} for u in users]}).encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=20000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--rate", default="100/1s", help="Braze /users/track limit of each workspace")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workspaces", choices=("same", "separate"), default="same")
    a = ap.parse_args()

    server = EmbeddedRedis().start()
    boxes = {"bulk": BrazeSandbox(api_key="k-bulk", rate_limit="100000/1s").start()}
    boxes["live"] = boxes["bulk"] if a.workspaces == "same" else BrazeSandbox(api_key="k-live",
                                                                               rate_limit="100000/1s").start()
    for b in set(boxes.values()):
        b.set_faults(latency_ms=a.latency_ms)
    text = "".join(TABLE.format(name=n, url=boxes[n].url, key=boxes[n].api_key, rate=a.rate) for n in ("bulk", "live"))
    base = Settings(redis_url=server.url, channels_file="bench", delivery_concurrency=a.concurrency,
                    worker_metrics_port=0, flush_delay_ms=200, resync_on_start=False)
    settings = base.replace(channel_table=channels.parse(text, base, {}))
    r = redis.Redis.from_url(server.url)
    rt = runtime.build(settings)
    ls = {ln.name: ln for ln in lanes.of(rt)}
    eng = Engine(rt, lanes=[(ln.name, ln.rt, ()) for ln in ls.values()], concurrency=a.concurrency).start()
    keys = {n: ls[n].channel.keys for n in ls}
    for k in keys.values():
        webhook_queue.ensure_group(r, k)
    try:
        base_lat = probe(r, keys["live"], boxes["live"], a.probes, "base")
        t0 = time.monotonic()
        users = [f"Ubulk{i:027x}" for i in range(a.backlog)]
        for i in range(0, len(users), 200):
            webhook_queue.enqueue(r, keys["bulk"], body(users[i:i + 200], 1000))
        time.sleep(1.0)  # the backlog is in the outbox
        lat = probe(r, keys["live"], boxes["live"], a.probes, "load")
        while _profiles(boxes["bulk"], "sg-bulk") < a.backlog and time.monotonic() - t0 < 600:
            time.sleep(0.5)
        drain = time.monotonic() - t0
    finally:
        eng.stop()
        for b in set(boxes.values()):
            b.stop()
        server.cleanup()
    print(f"workspaces {a.workspaces}, limit {a.rate} each, Braze latency {a.latency_ms:.0f} ms, "
          f"concurrency {a.concurrency} (split per channel)")
    print(f"live channel, follow -> Braze: without backlog p50 {statistics.median(base_lat):.2f} s, "
          f"max {max(base_lat):.2f} s")
    print(f"live channel, follow -> Braze: during bulk backlog of {a.backlog:,}: p50 {statistics.median(lat):.2f} s, "
          f"max {max(lat):.2f} s")
    print(f"bulk backlog drained in {drain:.1f} s ({a.backlog / drain:,.0f} profiles/s)")
    return 0


def _profiles(box: BrazeSandbox, group: str) -> int:
    return sum(1 for p in box.profiles() if p.get("subscription_groups", {}).get(group) == "subscribed")


def probe(r, keys, box: BrazeSandbox, n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        user = f"U{tag}{i:028x}"[:33]
        t = time.monotonic()
        webhook_queue.enqueue(r, keys, body([user], 2000 + i))
        while box.subscription_state("sg-live", alias_name=user, alias_label="line_id") != "subscribed":
            if time.monotonic() - t > 120:
                raise SystemExit(f"probe {user} not delivered in 120 s")
            time.sleep(0.01)
        out.append(time.monotonic() - t)
        time.sleep(max(0.0, 0.5 - out[-1]))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
