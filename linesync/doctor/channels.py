"""``linesync doctor`` with several channels: Redis and the processes once, LINE, Braze and the resync per channel.

Each channel's checks are the single-channel ones (linesync/doctor/run.py) run with that channel's
settings, named ``<channel>:<check>`` (``jp:line.token``, ``jp:braze.api_key``, ``jp:resync.recent``),
plus ``<channel>:line.destination``: the ``destination`` of the newest body the workers applied for
the channel (``{P}:ch:<name>:destination``) is the bot user id of the channel's access token
(LINE's ``/v2/bot/info``). A mismatch means the secret and URL of one LINE channel are paired with
the token of another in the file: the bodies verify, but belong to another bot.
LINE should post each channel's webhooks to ``LINESYNC_PUBLIC_URL/line/events/<channel>``
(``/line/events`` for the channel ``default``).
"""

from __future__ import annotations

import dataclasses

import redis

from linesync.doctor import process_checks
from linesync.doctor.http import Http
from shared.channels import Channel
from linesync.doctor.http import HttpFailure
from shared.check import Check, failed, passed, skipped
from workers.line_api import BOT_INFO_PATH
from shared.clock import redis_now
from shared.config import WEBHOOK_PATH, Settings
from shared.keys import DEFAULT_CHANNEL, Keys
from shared.status import workers


def webhook_url(settings: Settings, channel: Channel) -> str | None:
    """Where LINE should post ``channel``'s webhooks (None without LINESYNC_PUBLIC_URL)."""
    if not settings.public_url:
        return None
    return settings.public_url + WEBHOOK_PATH + ("" if channel.name == DEFAULT_CHANNEL else f"/{channel.name}")


def destination(http: Http, settings: Settings, r: redis.Redis | None, channel: Channel) -> Check:
    name = "line.destination"
    if r is None:
        return skipped(name, "Redis did not answer")
    try:
        seen = r.get(channel.keys.destination)
    except redis.RedisError:
        return skipped(name, "Redis did not answer")
    if seen is None:
        return skipped(name, "no webhook applied yet")
    if not settings.line_channel_access_token:
        return skipped(name, "no access token")
    try:
        reply = http.request("GET", settings.line_api_base_url.rstrip("/") + BOT_INFO_PATH,
                             headers={"Authorization": f"Bearer {settings.line_channel_access_token}"}, json=None)
    except HttpFailure:
        return skipped(name, "LINE did not answer (see line.token)")
    doc = reply.json() if reply.status == 200 else None
    bot = doc.get("userId") if isinstance(doc, dict) else None
    if not bot:
        return skipped(name, "LINE's /v2/bot/info gave no userId (see line.token)")
    seen_text = seen.decode() if isinstance(seen, bytes) else seen
    if seen_text == bot:
        return passed(name, f"webhooks are addressed to this channel's bot ({bot})")
    return failed(name, f"webhooks on this channel's URL are addressed to bot {seen_text}, but its access token "
                        f"belongs to bot {bot}",
                  "in LINESYNC_CHANNELS_FILE, give this channel the secret and the access token of the same LINE "
                  "channel, and point that channel's webhook URL here")


def _named(channel: Channel, checks: list[Check]) -> list[Check]:
    return [dataclasses.replace(c, name=f"{channel.name}:{c.name}") for c in checks]


def diagnose_channels(settings: Settings, *, http: Http, connect_redis, send_test: bool,
                      resync_max_age_s: float | None, channel: str | None) -> list[Check]:
    from linesync.doctor.run import braze_section, line_section, redis_section

    chans = [c for c in settings.channels() if channel is None or c.name == channel]
    if not chans:
        return [failed("channels", f"no channel {channel!r} in LINESYNC_CHANNELS_FILE",
                       "use one of: " + ", ".join(c.name for c in settings.channels()))]
    checks, r = redis_section(settings, connect_redis)
    for ch in chans:
        cs = ch.settings
        checks += _named(ch, line_section(cs, http, send_test=send_test, webhook_url=webhook_url(settings, ch)))
        checks += _named(ch, braze_section(cs, http))
        checks += _named(ch, [destination(http, cs, r, ch)])
    if r is None:
        why = "Redis did not answer"
        return checks + [skipped(n, why) for n in ("workers.alive", "beat.alive")] + [
            skipped(f"{ch.name}:resync.recent", why) for ch in chans]
    try:
        keys = Keys(settings.key_prefix)
        now = redis_now(r)
        checks += [process_checks.workers_alive(workers(r, keys, now)),
                   process_checks.beat_alive(keys.redbeat_lock, r.pttl(keys.redbeat_lock))]
        for ch in chans:
            max_age = resync_max_age_s or process_checks.resync_max_age(ch.settings.resync_schedule)
            last_completed, last_finished, current = process_checks.read_resync(r, ch.keys)
            checks += _named(ch, [process_checks.resync_recent(last_completed, last_finished, current,
                                                               now_ms=int(now * 1000), max_age_s=max_age)])
    except redis.RedisError as e:
        checks.append(failed("redis.connection", f"Redis stopped answering ({type(e).__name__})",
                             "check Redis and run `linesync doctor` again"))
    return checks
