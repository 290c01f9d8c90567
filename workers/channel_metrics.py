"""Per-channel and per-workspace health, with several channels: exported next to the cluster-wide figures.

With ``LINESYNC_CHANNELS_FILE`` the cluster-wide families of workers/cluster_metrics.py describe
the unscoped keys only (the channel ``default`` and its workspace). This collector adds, per
channel and per Braze workspace, the few series an operator alerts on, read by the same
exporter process (the holder of ``{P}:metrics:exporter``) when /metrics is scraped:

  linesync_channel_webhook_unconsumed{channel}                bodies not yet read
  linesync_channel_webhook_oldest_unconsumed_age_seconds{channel}
  linesync_channel_outbox_pending_profiles{channel}           profiles waiting for Braze
  linesync_channel_outbox_oldest_pending_age_seconds{channel}
  linesync_channel_dead_letters{channel}
  linesync_channel_profiles_known{channel}
  linesync_workspace_braze_paused{workspace,limiter}          1 while that workspace's workers wait

About ten Redis calls per channel per scrape. Absent without a channels file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import outbox, state, status
from shared.channels import Channel
from shared.clock import redis_now
from shared.redis_conn import REDIS_DOWN


class ChannelCollector(Collector):
    def __init__(self, get_client: Callable[[], redis.Redis], chans: Sequence[Channel], *,
                 active: Callable[[], bool] = lambda: True):
        self.get_client, self.chans, self.active = get_client, list(chans), active

    def collect(self) -> Iterator:
        if not self.active() or not self.chans:
            return
        try:
            r = self.get_client()
            families = self._families(r, redis_now(r))
        except (REDIS_DOWN + (redis.RedisError,)):
            return  # linesync_redis_up (workers/cluster_metrics.py) says so
        yield from families

    def _families(self, r: redis.Redis, now: float) -> list:
        def fam(name: str, help_: str, labels=("channel",)) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_, labels=list(labels))

        unconsumed = fam("linesync_channel_webhook_unconsumed", "bodies not yet read by a consumer, per channel")
        age = fam("linesync_channel_webhook_oldest_unconsumed_age_seconds", "age of the oldest unread body")
        pending = fam("linesync_channel_outbox_pending_profiles", "profiles waiting to be sent to Braze")
        pending_age = fam("linesync_channel_outbox_oldest_pending_age_seconds",
                          "how long the oldest profile waiting has waited (0: none waits)")
        dead = fam("linesync_channel_dead_letters", "dead letters waiting for an operator")
        known = fam("linesync_channel_profiles_known", "LINE users with a known state")
        paused = fam("linesync_workspace_braze_paused", "1 while the workspace's workers wait (any kind of pause)",
                     labels=("workspace", "limiter"))
        seen_ws = set()
        for ch in self.chans:
            q = status.queue(r, ch.keys, now)
            unconsumed.add_metric([ch.name], q["lag"] or 0)
            age.add_metric([ch.name], q["oldest_unconsumed_age_s"] or 0)
            pending.add_metric([ch.name], outbox.sizes(r, ch.keys)["pending_profiles"])
            oldest = outbox.oldest_pending_ms(r, ch.keys)
            pending_age.add_metric([ch.name], max(0.0, now - oldest / 1000) if oldest is not None else 0.0)
            dead.add_metric([ch.name], r.xlen(ch.keys.dlq))
            known.add_metric([ch.name], state.count(r, ch.keys))
            if ch.workspace_label not in seen_ws:
                seen_ws.add(ch.workspace_label)
                for limiter, st in status.limits(r, ch.workspace_keys, now).items():
                    paused.add_metric([ch.workspace_label, limiter], 1 if st["paused"] else 0)
        return [unconsumed, age, pending, pending_age, dead, known, paused]
