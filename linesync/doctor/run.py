"""Every check, in the order an operator would fix things: Redis, LINE, Braze, the processes."""

from __future__ import annotations

from collections.abc import Callable

import redis

from linesync.doctor import braze_checks, line_checks, process_checks
from shared import redis_checks, redis_conn
from linesync.doctor.http import Http
from shared.check import FAIL, Check, failed, passed, skipped
from shared.config import Settings, mask_url_password
from shared.keys import Keys
from shared.clock import redis_now
from shared.status import workers

# Operator commands may wait on Redis a little longer than the ingress does (s).
REDIS_TIMEOUT = 5.0

RedisFactory = Callable[[str], redis.Redis]


def default_redis(url: str) -> redis.Redis:
    return redis_conn.connect(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)


def redis_section(settings: Settings, connect: RedisFactory) -> tuple[list[Check], redis.Redis | None]:
    """The Redis checks, and a client for the later ones (None: Redis did not answer)."""
    name = "redis.connection"
    if not settings.redis_url:
        return [failed(name, "REDIS_URL is not set", "set REDIS_URL, e.g. redis://host:6379/0")], None
    where = mask_url_password(settings.redis_url)
    try:
        r = connect(settings.redis_url)
        info = r.info()
    except redis.AuthenticationError:
        return [failed(name, f"{where} refused the credentials", "check the user/password in REDIS_URL")], None
    except redis.RedisError as e:
        return [failed(name, f"{where} did not answer ({type(e).__name__})",
                       "check REDIS_URL and that Redis runs and is reachable from this host")], None
    return [passed(name, f"{where} answers"), *redis_checks.check_info(info, settings.redis_durability)], r


def line_section(settings: Settings, http: Http, *, send_test: bool, webhook_url: str | None = None) -> list[Check]:
    """``webhook_url``: where LINE should post (default: the single channel's, LINESYNC_PUBLIC_URL/line/events)."""
    base, token = settings.line_api_base_url, settings.line_channel_access_token
    webhook_url = webhook_url or settings.webhook_url
    token_check = line_checks.token(http, base, token)
    checks = [token_check]
    if token_check.status == FAIL:
        why = "the access token check failed"
        checks += [skipped("line.webhook_url", why), skipped("line.webhook_active", why)]
        if send_test:
            checks.append(skipped("line.test_delivery", why))
        return checks
    checks += line_checks.webhook(http, base, token, webhook_url)
    if send_test:
        checks.append(line_checks.delivery(http, base, token, webhook_url))
    return checks


def braze_section(settings: Settings, http: Http) -> list[Check]:
    return [braze_checks.api_key(http, settings.braze_rest_endpoint, settings.braze_api_key),
            braze_checks.state_mode(settings.braze_state_mode, settings.braze_subscription_group_id),
            braze_checks.subscription_group(settings.braze_subscription_group_id, settings.braze_state_mode)]


def process_section(r: redis.Redis, keys: Keys, *, resync_max_age_s: float) -> list[Check]:
    now = redis_now(r)
    last_completed, last_finished, current = process_checks.read_resync(r, keys)
    return [
        process_checks.workers_alive(workers(r, keys, now)),
        process_checks.beat_alive(keys.redbeat_lock, r.pttl(keys.redbeat_lock)),
        process_checks.resync_recent(last_completed, last_finished, current, now_ms=int(now * 1000),
                                     max_age_s=resync_max_age_s),
    ]


def diagnose(settings: Settings, *, http: Http, connect_redis: RedisFactory = default_redis,
             send_test: bool = False, resync_max_age_s: float | None = None, channel: str | None = None,
             ) -> list[Check]:
    """Every check's result. Nothing here raises for a broken dependency: that is a failed check.

    With a channels file, LINE, Braze and the resync are checked per channel (``channel``: only
    that one), each check named ``<channel>:<check>`` (linesync/doctor/channels.py).
    """
    if settings.channel_table:
        from linesync.doctor.channels import diagnose_channels
        return diagnose_channels(settings, http=http, connect_redis=connect_redis, send_test=send_test,
                                 resync_max_age_s=resync_max_age_s, channel=channel)
    checks, r = redis_section(settings, connect_redis)
    checks += line_section(settings, http, send_test=send_test)
    checks += braze_section(settings, http)
    if r is None:
        why = "Redis did not answer"
        checks += [skipped(n, why) for n in ("workers.alive", "beat.alive", "resync.recent")]
    else:
        max_age = resync_max_age_s or process_checks.resync_max_age(settings.resync_schedule)
        try:
            checks += process_section(r, Keys(settings.key_prefix), resync_max_age_s=max_age)
        except redis.RedisError as e:
            checks.append(failed("redis.connection", f"Redis stopped answering ({type(e).__name__})",
                                 "check Redis and run `linesync doctor` again"))
    return checks
