"""Beat's scheduler: redbeat's, made to ride out a Redis outage.

redbeat extends its lock and reads the schedule from Redis on every tick; when
Redis is away (a restart, a failover) the error escapes ``tick`` and beat
exits, and under ``linesync up`` that stops the whole stack. Here a tick that
cannot reach Redis logs once and tries again shortly; a lock found lost after
the outage (it lapsed, or Redis came back without it) is taken again, waiting
while another beat replica holds it, as at start.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

from redbeat import RedBeatScheduler
from redbeat.schedulers import acquire_distributed_beat_lock, get_redis
from redis.exceptions import LockError

from shared import redis_checks
from shared.redis_conn import REDIS_DOWN
from workers.beat_probe import BeatProbe

log = logging.getLogger(__name__)

# While Redis is away, try again this often (s).
RETRY_SECONDS = 2.0


class Scheduler(RedBeatScheduler):
    _redis_down = False
    probe: BeatProbe | None = None

    def setup_schedule(self):
        from shared.errors import ConfigError
        try:
            redis_checks.at_start(get_redis(self.app), "beat", log, self.app.settings.redis_durability)
            # /metrics and /healthz, served while this replica waits for the lock too.
            self.probe = self.probe or BeatProbe(self.app.settings.beat_metrics_port).start()
        except ConfigError as e:
            log.critical("%s", e)
            raise SystemExit(2) from None
        attempt = 0
        while True:  # writing the schedule needs Redis, with room (maxmemory): wait for both
            try:
                return super().setup_schedule()
            except REDIS_DOWN as e:
                attempt += 1
                if attempt == 1:
                    log.warning("beat: cannot write the schedule to Redis (%s); retrying every %.0f s",
                                type(e).__name__, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)

    def tick(self, *args, **kwargs):
        try:
            if self.lock_key and self.lock is None:  # not taken at start (Redis away or full): take it now
                acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=self))
            wait = super().tick(*args, **kwargs)
        except REDIS_DOWN as e:
            if not self._redis_down:
                log.warning("beat: Redis unavailable (%s); retrying every %.0f s", type(e).__name__, RETRY_SECONDS)
            self._redis_down = True
            self._ticked("redis_down")
            return RETRY_SECONDS
        except LockError:
            log.warning("beat: lost the beat lock during an outage; taking it again (waits while another "
                        "beat replica holds it)")
            if self.probe is not None:
                self.probe.standby(True)
            self._reacquire()
            return 0.1
        if self._redis_down:
            log.info("beat: Redis is back")
            self._redis_down = False
        self._ticked("active")
        return wait

    def _ticked(self, state: str) -> None:
        if self.probe is not None:
            self.probe.ticked(state)

    def close(self):
        super().close()
        if self.probe is not None:
            self.probe.close()

    def _reacquire(self) -> None:
        try:
            if self.lock is None:
                acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=self))
            else:
                self.lock.acquire(blocking=True)
            log.info("beat: lock taken again")
        except REDIS_DOWN:
            self._redis_down = True
