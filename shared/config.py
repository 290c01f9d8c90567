"""Configuration: read once from the environment (and a ``.env`` file), validated once.

Every setting linesync reads is declared in ``_FIELDS`` below, with its
environment variable, parser and default; the README's configuration table
lists the same. Processes call :func:`load_settings` once at start and then
:meth:`Settings.require` for the variables their role needs, so a missing or
malformed variable stops the process with one line naming it. Values of secret
variables never appear in error text or ``repr``.

One rule spans variables: a URL that receives a bearer token (``BRAZE_REST_ENDPOINT``,
``LINE_API_BASE_URL``) may be plain ``http://`` only to this machine (localhost,
127.0.0.0/8, ::1), unless ``LINESYNC_ALLOW_INSECURE_HTTP`` is true.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared import config_values as values
from shared.config_values import (  # noqa: F401  (re-exported: shared.config is where settings are read)
    RateLimit,
    parse_rate,
    LOG_LEVELS,
    STATE_MODES,
    REDIS_DURABILITIES,
    WEBHOOK_PATH,
    is_loopback_host,
    mask_url_password,
    parse_interval,
)

# LINE's documented default API host.
DEFAULT_LINE_API_BASE_URL = "https://api.line.me"
# Braze allows 75 objects of each kind per /users/track request; we cap combined.
DEFAULT_TRACK_BATCH_SIZE = 75
# Braze's documented /users/track ceiling.
DEFAULT_TRACK_RATE_LIMIT = "3000/3s"
# Braze's shared budget for /users/identify, /users/merge and friends.
DEFAULT_IDENTIFY_RATE_LIMIT = "20000/60s"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Braze requests one worker process keeps in flight: Braze answers in ~100-300 ms, so
# 64 in flight is ~200-600 requests/s per process, a fair share of Braze's 1,000/s.
DEFAULT_DELIVERY_CONCURRENCY = 64
# Where a worker process serves its Prometheus /metrics and /healthz (0 = off); a taken port
# stops the process naming the setting (workers/metrics_server.py). Not 9090: Prometheus's own.
DEFAULT_WORKER_METRICS_PORT = 9464
# The same for a beat process.
DEFAULT_BEAT_METRICS_PORT = 9465
# The ingress's admin surface (/metrics, /v1/..., /status): private by default.
DEFAULT_ADMIN_BIND = "127.0.0.1:9080"
# Mark-missing refuses when a complete resync pass lists fewer than this share of the
# followers linesync knows (a truncated or empty list from LINE must not unsubscribe them).
DEFAULT_MARK_MISSING_MIN_SHARE = 0.5

_BEARER_URLS = ("braze_rest_endpoint", "line_api_base_url")


def check_transport(values: Mapping[str, Any]) -> None:
    """Refuse a URL that carries a bearer token over plain http:// to another host (module docstring)."""
    if values.get("allow_insecure_http"):
        return
    for name in _BEARER_URLS:
        url = values.get(name)
        if not url:
            continue
        p = urlsplit(url)
        if p.scheme == "http" and not is_loopback_host(p.hostname):
            raise ConfigError(
                _FIELDS[name].env,
                "is a plain http:// URL to another host: the bearer token would cross the network "
                f"unencrypted (use https://, or set {_FIELDS['allow_insecure_http'].env}=true)",
            )


@dataclass(frozen=True)
class _Field:
    env: str
    parse: Callable[[str], Any]
    default: Any = None
    secret: bool = False


# attribute name -> how to read it. Order here is the order of the README table.
_FIELDS: dict[str, _Field] = {
    "redis_url": _Field("REDIS_URL", values.redis_url, None, secret=True),
    "line_channel_secret": _Field("LINE_CHANNEL_SECRET", values.text_value, None, secret=True),
    "line_channel_secret_previous": _Field("LINE_CHANNEL_SECRET_PREVIOUS", values.text_value, None, secret=True),
    "line_channel_access_token": _Field("LINE_CHANNEL_ACCESS_TOKEN", values.text_value, None, secret=True),
    "line_api_base_url": _Field("LINE_API_BASE_URL", values.http_url, DEFAULT_LINE_API_BASE_URL),
    "braze_rest_endpoint": _Field("BRAZE_REST_ENDPOINT", values.http_url, None),
    "braze_api_key": _Field("BRAZE_API_KEY", values.text_value, None, secret=True),
    "braze_subscription_group_id": _Field("BRAZE_SUBSCRIPTION_GROUP_ID", values.text_value, None),
    "braze_state_mode": _Field("BRAZE_STATE_MODE", values.state_mode, "subscription_group"),
    "braze_track_batch_size": _Field("BRAZE_TRACK_BATCH_SIZE", values.positive_int, DEFAULT_TRACK_BATCH_SIZE),
    "braze_track_rate_limit": _Field("BRAZE_TRACK_RATE_LIMIT", parse_rate, parse_rate(DEFAULT_TRACK_RATE_LIMIT)),
    "ingress_max_body_bytes": _Field("INGRESS_MAX_BODY_BYTES", values.positive_int, DEFAULT_MAX_BODY_BYTES),
    "admin_token": _Field("LINESYNC_ADMIN_TOKEN", values.text_value, None, secret=True),
    # --- linesync's own settings (README "Other settings") ---
    "key_prefix": _Field("LINESYNC_KEY_PREFIX", values.text_value, "linesync"),
    "log_format": _Field("LINESYNC_LOG_FORMAT", values.log_format, "text"),
    "log_level": _Field("LINESYNC_LOG_LEVEL", values.log_level, "INFO"),
    "rejected_max": _Field("INGRESS_REJECTED_MAX", values.positive_int, 10_000),
    "ingress_memory_high_watermark": _Field("INGRESS_MEMORY_HIGH_WATERMARK", values.fraction_value, 0.9),
    "dedupe_ttl_seconds": _Field("LINESYNC_DEDUPE_TTL_SECONDS", values.positive_int, 7 * 24 * 3600),
    "consume_batch_bodies": _Field("LINESYNC_CONSUME_BATCH", values.positive_int, 200),
    "consume_max_deliveries": _Field("LINESYNC_CONSUME_MAX_DELIVERIES", values.positive_int, 5),
    "consume_claim_idle_ms": _Field("LINESYNC_CONSUME_CLAIM_IDLE_MS", values.positive_int, 30_000),
    "delivery_concurrency": _Field("LINESYNC_DELIVERY_CONCURRENCY", values.positive_int, DEFAULT_DELIVERY_CONCURRENCY),
    "flush_delay_ms": _Field("BRAZE_FLUSH_DELAY_MS", values.positive_int, 500),
    "braze_timeout_seconds": _Field("BRAZE_TIMEOUT_SECONDS", values.non_negative_float, 10.0),
    "braze_retry_max_attempts": _Field("BRAZE_RETRY_MAX_ATTEMPTS", values.positive_int, 40),
    "braze_retry_base_seconds": _Field("BRAZE_RETRY_BASE_SECONDS", values.non_negative_float, 1.0),
    "braze_retry_max_seconds": _Field("BRAZE_RETRY_MAX_SECONDS", values.non_negative_float, 600.0),
    "braze_auth_retry_seconds": _Field("BRAZE_AUTH_RETRY_SECONDS", values.non_negative_float, 60.0),
    "braze_probe_max_seconds": _Field("BRAZE_PROBE_MAX_SECONDS", values.positive_float, 15.0),
    "braze_pause_max_seconds": _Field("BRAZE_PAUSE_MAX_SECONDS", values.positive_float, 3600.0),
    "braze_identify_rate_limit": _Field(
        "BRAZE_IDENTIFY_RATE_LIMIT", parse_rate, parse_rate(DEFAULT_IDENTIFY_RATE_LIMIT)
    ),
    "resync_schedule": _Field("RESYNC_SCHEDULE", values.schedule_value, "0 3 * * *"),
    "resync_on_start": _Field("RESYNC_ON_START", values.bool_value, True),
    "resync_mark_missing": _Field("RESYNC_MARK_MISSING_UNSUBSCRIBED", values.bool_value, False),
    "resync_mark_missing_min_share": _Field("LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE", values.fraction_value,
                                            DEFAULT_MARK_MISSING_MIN_SHARE),
    "forward_event_types": _Field("LINESYNC_FORWARD_EVENTS", values.forward_events, ()),
    "public_url": _Field("LINESYNC_PUBLIC_URL", values.public_url, None),
    "allow_insecure_http": _Field("LINESYNC_ALLOW_INSECURE_HTTP", values.bool_value, False),
    "worker_metrics_port": _Field("LINESYNC_WORKER_METRICS_PORT", values.port_value, DEFAULT_WORKER_METRICS_PORT),
    "beat_metrics_port": _Field("LINESYNC_BEAT_METRICS_PORT", values.port_value, DEFAULT_BEAT_METRICS_PORT),
    "admin_bind": _Field("LINESYNC_ADMIN_BIND", values.bind_value, DEFAULT_ADMIN_BIND),
    "redis_durability": _Field("LINESYNC_REDIS_DURABILITY", values.durability, "aof"),
    "channels_file": _Field("LINESYNC_CHANNELS_FILE", values.text_value, None),
}


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    line_channel_secret: str | None = field(default=None, repr=False)
    line_channel_secret_previous: str | None = field(default=None, repr=False)  # accepted too, during a rotation
    line_channel_access_token: str | None = field(default=None, repr=False)
    line_api_base_url: str = DEFAULT_LINE_API_BASE_URL
    braze_rest_endpoint: str | None = None
    braze_api_key: str | None = field(default=None, repr=False)
    braze_subscription_group_id: str | None = None
    braze_state_mode: str = "subscription_group"  # attributes: no subscription group needed (no LINE channel)
    braze_track_batch_size: int = DEFAULT_TRACK_BATCH_SIZE
    braze_track_rate_limit: RateLimit = parse_rate(DEFAULT_TRACK_RATE_LIMIT)
    ingress_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    admin_token: str | None = field(default=None, repr=False)
    key_prefix: str = "linesync"
    log_format: str = "text"
    log_level: str = "INFO"
    rejected_max: int = 10_000
    ingress_memory_high_watermark: float = 0.9  # of Redis's maxmemory; above it webhooks get 503 (0 = off)
    dedupe_ttl_seconds: int = 7 * 24 * 3600
    consume_batch_bodies: int = 200
    consume_max_deliveries: int = 5
    consume_claim_idle_ms: int = 30_000
    delivery_concurrency: int = DEFAULT_DELIVERY_CONCURRENCY
    flush_delay_ms: int = 500
    braze_timeout_seconds: float = 10.0
    braze_retry_max_attempts: int = 40
    braze_retry_base_seconds: float = 1.0
    braze_retry_max_seconds: float = 600.0
    braze_auth_retry_seconds: float = 60.0
    braze_probe_max_seconds: float = 15.0
    braze_pause_max_seconds: float = 3600.0
    braze_identify_rate_limit: RateLimit = parse_rate(DEFAULT_IDENTIFY_RATE_LIMIT)
    resync_schedule: str = "0 3 * * *"
    resync_on_start: bool = True
    resync_mark_missing: bool = False
    resync_mark_missing_min_share: float = DEFAULT_MARK_MISSING_MIN_SHARE
    forward_event_types: tuple[str, ...] = ()
    public_url: str | None = None
    allow_insecure_http: bool = False
    worker_metrics_port: int = DEFAULT_WORKER_METRICS_PORT
    beat_metrics_port: int = DEFAULT_BEAT_METRICS_PORT
    admin_bind: str = DEFAULT_ADMIN_BIND
    redis_durability: str = "aof"  # replicas: a webhook is answered 200 once a replica has it (WAIT)
    channels_file: str | None = None
    # The channels file, parsed once by load_settings (shared/channels.py); () without one.
    channel_table: tuple = field(default=(), repr=False, compare=False)

    @property
    def webhook_url(self) -> str | None:
        """Where LINE should post webhooks: ``LINESYNC_PUBLIC_URL`` + ``/line/events`` (None if unset)."""
        return self.public_url + WEBHOOK_PATH if self.public_url else None

    def channels(self) -> tuple:
        """Every channel this deployment serves (shared.channels.Channel): the channels file's,
        or the one channel ``default`` the single-channel variables define."""
        if self.channel_table:
            return self.channel_table
        from shared.channels import single

        return (single(self),)

    def channel(self, name: str):
        """The channel ``name``, or None."""
        return next((c for c in self.channels() if c.name == name), None)

    def require(self, *names: str) -> Settings:
        """Raise ConfigError for the first named attribute that is unset.

        With a channels file, the per-channel settings were checked per channel when it was read.
        """
        from shared.channels import REQUIRED

        for name in names:
            if self.channel_table and name in REQUIRED:
                continue
            if name == "braze_subscription_group_id" and self.braze_state_mode == "attributes":
                continue  # the state goes into custom attributes only
            if getattr(self, name) in (None, ""):
                why = (f" (BRAZE_STATE_MODE={self.braze_state_mode} writes it; BRAZE_STATE_MODE=attributes needs none)"
                       if name == "braze_subscription_group_id" else "")
                raise ConfigError(_FIELDS[name].env, f"is required but not set{why}")
        return self

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, str]:
        """Every setting by environment variable, as text; secrets shown only as set/unset.

        ``REDIS_URL`` is shown with its password masked (where Redis is matters; the password does not).
        """
        out = {}
        for name, f in _FIELDS.items():
            v = getattr(self, name)
            if name == "redis_url" and v:
                out[f.env] = mask_url_password(v)
            elif f.secret:
                out[f.env] = "<set>" if v else "<unset>"
            else:
                out[f.env] = _text_of(v)
        return out

    def defaults(self) -> set[str]:
        """Environment variables whose value is the default (unset, or set to the default)."""
        base = Settings()
        return {f.env for name, f in _FIELDS.items() if getattr(self, name) == getattr(base, name)}


def _text_of(v: Any) -> str:
    if v is None:
        return "<unset>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    return str(v)


# What each role needs before it may start.
ROLE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "ingress": ("redis_url", "line_channel_secret"),
    "worker": ("redis_url", "braze_rest_endpoint", "braze_api_key", "braze_subscription_group_id"),
    "resync": ("redis_url", "line_channel_access_token"),
    "cli": ("redis_url",),
}


def load_settings(environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Parse every setting from ``environ`` (default ``os.environ`` plus ``./.env``).

    Variables already in the environment win over the ``.env`` file.
    """
    if environ is None:
        env = dict(os.environ)
        if dotenv:
            env = {**_read_dotenv(), **env}
    else:
        env = dict(environ)
    values: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        raw = env.get(f.env)
        if raw is None or raw == "":
            continue
        try:
            values[name] = f.parse(raw)
        except ValueError as e:
            # The message never includes the value: it may be a secret.
            raise ConfigError(f.env, f"is malformed ({e})") from None
    check_transport(values)
    settings = Settings(**values)
    if settings.channels_file:
        from shared import channels  # here: shared.channels imports this module

        settings = settings.replace(channel_table=channels.load(settings, env))
    return settings


def _read_dotenv() -> dict[str, str]:
    try:
        from dotenv import dotenv_values
    except ImportError:  # pragma: no cover - dependency is declared
        return {}
    path = os.path.join(os.getcwd(), ".env")
    if not os.path.exists(path):
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def channel_field(name: str) -> tuple[str, Callable[[str], Any]]:
    """(key in the channels file, parser) of the setting ``name``: its variable in lower case."""
    f = _FIELDS[name]
    return f.env.lower(), f.parse


def env_names() -> dict[str, str]:
    """Attribute name -> environment variable, for docs and tests."""
    return {name: f.env for name, f in _FIELDS.items()}
