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
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

from shared import cron
from shared.errors import ConfigError

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


@dataclass(frozen=True)
class RateLimit:
    """``N`` requests per ``period`` seconds, parsed from ``"N/Ss"``."""

    requests: int
    period: float

    @property
    def per_second(self) -> float:
        return self.requests / self.period

    def __str__(self) -> str:
        return f"{self.requests}/{self.period:g}s"


_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_rate(text: str) -> RateLimit:
    """``"3000/3s"`` → RateLimit(3000, 3.0). Also ``"100/s"``, ``"20000/1m"``."""
    m = _RATE_RE.match(text)
    if not m:
        raise ValueError("expected N/<duration>, e.g. 3000/3s")
    count = int(m.group(1))
    period = float(m.group(2) or 1) * _UNIT[m.group(3)]
    if count <= 0 or period <= 0:
        raise ValueError("rate and period must be positive")
    return RateLimit(count, period)


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _number(kind: type, text: str):
    """int() / float() whose error never quotes the value (it may be a mistyped secret)."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError("expected " + ("an integer" if kind is int else "a number")) from None


def _positive_int(text: str) -> int:
    v = _number(int, text)
    if v <= 0:
        raise ValueError("must be a positive integer")
    return v


def _port(text: str) -> int:
    v = _number(int, text)
    if not 0 <= v <= 65535:
        raise ValueError("must be a TCP port, 0-65535 (0 = off)")
    return v


def _bind(text: str) -> str:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH`` (gunicorn's spellings)."""
    text = text.strip()
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError("expected HOST:PORT (e.g. 0.0.0.0:9080) or unix:PATH")
    return text


def _non_negative_float(text: str) -> float:
    v = _number(float, text)
    if v < 0:
        raise ValueError("must not be negative")
    return v


def _positive_float(text: str) -> float:
    v = _number(float, text)
    if v <= 0:
        raise ValueError("must be positive")
    return v


def _fraction(text: str) -> float:
    v = _number(float, text)
    if not 0 <= v <= 1:
        raise ValueError("expected a fraction from 0 to 1, e.g. 0.9")
    return v


def _http_url(text: str) -> str:
    p = urlparse(text.strip())
    if p.scheme not in ("http", "https") or not p.netloc:
        raise ValueError("must be an http(s) URL")
    return text.strip().rstrip("/")


def _redis_url(text: str) -> str:
    from shared.redis_conn import SENTINEL_SCHEME, parse_sentinel_url
    p = urlparse(text.strip())
    if p.scheme == SENTINEL_SCHEME:
        parse_sentinel_url(text)  # ValueError saying what is wrong
    elif p.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss://, unix:// or sentinel:// URL")
    return text.strip()


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _log_format(text: str) -> str:
    t = text.strip().lower()
    if t not in ("text", "json"):
        raise ValueError("expected text or json")
    return t


def _schedule(text: str) -> str:
    """Five cron fields (``0 3 * * *``, checked by :mod:`shared.cron`), or ``every <duration>`` (``every 6h``)."""
    t = text.strip()
    if t.startswith("every "):
        parse_interval(t)
        return t
    try:
        return cron.check(t)
    except ValueError as e:
        raise ValueError(f"{e}; e.g. '0 3 * * *' or 'every 6h'") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    t = text.strip().upper()
    if t not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return t


STATE_MODES = ("subscription_group", "attributes", "both")  # shared/payload.py writes each


def _state_mode(text: str) -> str:
    t = text.strip().lower()
    if t not in STATE_MODES:
        raise ValueError("expected one of " + ", ".join(STATE_MODES))
    return t


# How Redis keeps an acknowledged webhook (shared/redis_checks.py): its own AOF, or a replica.
REDIS_DURABILITIES = ("aof", "replicas")


def _durability(text: str) -> str:
    t = text.strip().lower()
    if t not in REDIS_DURABILITIES:
        raise ValueError("expected aof or replicas")
    return t


def _forward_events(text: str) -> tuple[str, ...]:
    from shared.forward import FORWARDABLE  # here, not at the top: shared.forward imports the event model

    names = _csv(text)
    unknown = [n for n in names if n not in FORWARDABLE]
    if unknown:
        # Event type names are not secret; naming the unknown one is the useful part.
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; supported: {', '.join(FORWARDABLE)}")
    return tuple(dict.fromkeys(names))


# The path LINE posts webhooks to, below LINESYNC_PUBLIC_URL.
WEBHOOK_PATH = "/line/events"


def _public_url(text: str) -> str:
    url = _http_url(text)
    if urlsplit(url).path.endswith(WEBHOOK_PATH):
        raise ValueError(f"give the base URL: {WEBHOOK_PATH} is added to it")
    return url


def is_loopback_host(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 and ::1: a plain-http request to these never leaves the machine."""
    if not host:
        return False
    h = host.strip("[]").rstrip(".").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


# Settings whose URL receives a bearer token: plain http is refused unless it stays on this machine.
_BEARER_URLS = ("braze_rest_endpoint", "line_api_base_url")


def check_transport(values: Mapping[str, Any]) -> None:
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


def mask_url_password(url: str) -> str:
    """``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0`` (user names stay; sentinel:// too)."""
    if "," in url.split("/", 3)[2]:  # several hosts (sentinel://): not one netloc urlsplit can read
        return re.sub(r"^([a-z]+://[^:@/]*):[^@/]*@", r"\1:***@", url)
    p = urlsplit(url)
    if p.password is None:
        return url
    user = p.username or ""
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))


def parse_interval(text: str) -> float:
    """``every 30s`` → 30.0 seconds."""
    m = re.match(r"^every\s+(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError("expected 'every <N><s|m|h>', e.g. 'every 6h'")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class _Field:
    env: str
    parse: Callable[[str], Any]
    default: Any = None
    secret: bool = False


# attribute name -> how to read it. Order here is the order of the README table.
_FIELDS: dict[str, _Field] = {
    "redis_url": _Field("REDIS_URL", _redis_url, None, secret=True),
    "line_channel_secret": _Field("LINE_CHANNEL_SECRET", _text, None, secret=True),
    "line_channel_secret_previous": _Field("LINE_CHANNEL_SECRET_PREVIOUS", _text, None, secret=True),
    "line_channel_access_token": _Field("LINE_CHANNEL_ACCESS_TOKEN", _text, None, secret=True),
    "line_api_base_url": _Field("LINE_API_BASE_URL", _http_url, DEFAULT_LINE_API_BASE_URL),
    "braze_rest_endpoint": _Field("BRAZE_REST_ENDPOINT", _http_url, None),
    "braze_api_key": _Field("BRAZE_API_KEY", _text, None, secret=True),
    "braze_subscription_group_id": _Field("BRAZE_SUBSCRIPTION_GROUP_ID", _text, None),
    "braze_state_mode": _Field("BRAZE_STATE_MODE", _state_mode, "subscription_group"),
    "braze_track_batch_size": _Field("BRAZE_TRACK_BATCH_SIZE", _positive_int, DEFAULT_TRACK_BATCH_SIZE),
    "braze_track_rate_limit": _Field("BRAZE_TRACK_RATE_LIMIT", parse_rate, parse_rate(DEFAULT_TRACK_RATE_LIMIT)),
    "ingress_max_body_bytes": _Field("INGRESS_MAX_BODY_BYTES", _positive_int, DEFAULT_MAX_BODY_BYTES),
    "admin_token": _Field("LINESYNC_ADMIN_TOKEN", _text, None, secret=True),
    # --- linesync's own settings (README "Other settings") ---
    "key_prefix": _Field("LINESYNC_KEY_PREFIX", _text, "linesync"),
    "log_format": _Field("LINESYNC_LOG_FORMAT", _log_format, "text"),
    "log_level": _Field("LINESYNC_LOG_LEVEL", _log_level, "INFO"),
    "rejected_max": _Field("INGRESS_REJECTED_MAX", _positive_int, 10_000),
    "ingress_memory_high_watermark": _Field("INGRESS_MEMORY_HIGH_WATERMARK", _fraction, 0.9),
    "dedupe_ttl_seconds": _Field("LINESYNC_DEDUPE_TTL_SECONDS", _positive_int, 7 * 24 * 3600),
    "consume_batch_bodies": _Field("LINESYNC_CONSUME_BATCH", _positive_int, 200),
    "consume_max_deliveries": _Field("LINESYNC_CONSUME_MAX_DELIVERIES", _positive_int, 5),
    "consume_claim_idle_ms": _Field("LINESYNC_CONSUME_CLAIM_IDLE_MS", _positive_int, 30_000),
    "delivery_concurrency": _Field("LINESYNC_DELIVERY_CONCURRENCY", _positive_int, DEFAULT_DELIVERY_CONCURRENCY),
    "flush_delay_ms": _Field("BRAZE_FLUSH_DELAY_MS", _positive_int, 500),
    "braze_timeout_seconds": _Field("BRAZE_TIMEOUT_SECONDS", _non_negative_float, 10.0),
    "braze_retry_max_attempts": _Field("BRAZE_RETRY_MAX_ATTEMPTS", _positive_int, 40),
    "braze_retry_base_seconds": _Field("BRAZE_RETRY_BASE_SECONDS", _non_negative_float, 1.0),
    "braze_retry_max_seconds": _Field("BRAZE_RETRY_MAX_SECONDS", _non_negative_float, 600.0),
    "braze_auth_retry_seconds": _Field("BRAZE_AUTH_RETRY_SECONDS", _non_negative_float, 60.0),
    "braze_probe_max_seconds": _Field("BRAZE_PROBE_MAX_SECONDS", _positive_float, 15.0),
    "braze_pause_max_seconds": _Field("BRAZE_PAUSE_MAX_SECONDS", _positive_float, 3600.0),
    "braze_identify_rate_limit": _Field(
        "BRAZE_IDENTIFY_RATE_LIMIT", parse_rate, parse_rate(DEFAULT_IDENTIFY_RATE_LIMIT)
    ),
    "resync_schedule": _Field("RESYNC_SCHEDULE", _schedule, "0 3 * * *"),
    "resync_on_start": _Field("RESYNC_ON_START", _bool, True),
    "resync_mark_missing": _Field("RESYNC_MARK_MISSING_UNSUBSCRIBED", _bool, False),
    "resync_mark_missing_min_share": _Field("LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE", _fraction,
                                            DEFAULT_MARK_MISSING_MIN_SHARE),
    "forward_event_types": _Field("LINESYNC_FORWARD_EVENTS", _forward_events, ()),
    "public_url": _Field("LINESYNC_PUBLIC_URL", _public_url, None),
    "allow_insecure_http": _Field("LINESYNC_ALLOW_INSECURE_HTTP", _bool, False),
    "worker_metrics_port": _Field("LINESYNC_WORKER_METRICS_PORT", _port, DEFAULT_WORKER_METRICS_PORT),
    "beat_metrics_port": _Field("LINESYNC_BEAT_METRICS_PORT", _port, DEFAULT_BEAT_METRICS_PORT),
    "admin_bind": _Field("LINESYNC_ADMIN_BIND", _bind, DEFAULT_ADMIN_BIND),
    "redis_durability": _Field("LINESYNC_REDIS_DURABILITY", _durability, "aof"),
    "channels_file": _Field("LINESYNC_CHANNELS_FILE", _text, None),
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
