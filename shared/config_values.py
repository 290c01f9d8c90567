"""Configuration values: the parser of each kind of setting, and the rule for bearer-token URLs.

shared/config.py declares every setting with one of these parsers; each takes
the variable's text and returns its value or raises ValueError with a short
reason (config.py adds the variable's name). Pure functions, no environment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlparse, urlsplit, urlunsplit

from shared import cron


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


def bool_value(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def number_value(kind: type, text: str):
    """int() / float() whose error never quotes the value (it may be a mistyped secret)."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError("expected " + ("an integer" if kind is int else "a number")) from None


def positive_int(text: str) -> int:
    v = number_value(int, text)
    if v <= 0:
        raise ValueError("must be a positive integer")
    return v


def port_value(text: str) -> int:
    v = number_value(int, text)
    if not 0 <= v <= 65535:
        raise ValueError("must be a TCP port, 0-65535 (0 = off)")
    return v


def bind_value(text: str) -> str:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH`` (gunicorn's spellings)."""
    text = text.strip()
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError("expected HOST:PORT (e.g. 0.0.0.0:9080) or unix:PATH")
    return text


def non_negative_float(text: str) -> float:
    v = number_value(float, text)
    if v < 0:
        raise ValueError("must not be negative")
    return v


def positive_float(text: str) -> float:
    v = number_value(float, text)
    if v <= 0:
        raise ValueError("must be positive")
    return v


def fraction_value(text: str) -> float:
    v = number_value(float, text)
    if not 0 <= v <= 1:
        raise ValueError("expected a fraction from 0 to 1, e.g. 0.9")
    return v


def http_url(text: str) -> str:
    p = urlparse(text.strip())
    if p.scheme not in ("http", "https") or not p.netloc:
        raise ValueError("must be an http(s) URL")
    return text.strip().rstrip("/")


def redis_url(text: str) -> str:
    from shared.redis_conn import SENTINEL_SCHEME, parse_sentinel_url
    p = urlparse(text.strip())
    if p.scheme == SENTINEL_SCHEME:
        parse_sentinel_url(text)  # ValueError saying what is wrong
    elif p.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss://, unix:// or sentinel:// URL")
    return text.strip()


def text_value(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def csv_value(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def log_format(text: str) -> str:
    t = text.strip().lower()
    if t not in ("text", "json"):
        raise ValueError("expected text or json")
    return t


def schedule_value(text: str) -> str:
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


def log_level(text: str) -> str:
    t = text.strip().upper()
    if t not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return t


STATE_MODES = ("subscription_group", "attributes", "both")  # shared/payload.py writes each


def state_mode(text: str) -> str:
    t = text.strip().lower()
    if t not in STATE_MODES:
        raise ValueError("expected one of " + ", ".join(STATE_MODES))
    return t


# How Redis keeps an acknowledged webhook (shared/redis_checks.py): its own AOF, or a replica.
REDIS_DURABILITIES = ("aof", "replicas")


def durability(text: str) -> str:
    t = text.strip().lower()
    if t not in REDIS_DURABILITIES:
        raise ValueError("expected aof or replicas")
    return t


def forward_events(text: str) -> tuple[str, ...]:
    from shared.forward import FORWARDABLE  # here, not at the top: shared.forward imports the event model

    names = csv_value(text)
    unknown = [n for n in names if n not in FORWARDABLE]
    if unknown:
        # Event type names are not secret; naming the unknown one is the useful part.
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; supported: {', '.join(FORWARDABLE)}")
    return tuple(dict.fromkeys(names))


# The path LINE posts webhooks to, below LINESYNC_PUBLIC_URL.
WEBHOOK_PATH = "/line/events"


def public_url(text: str) -> str:
    url = http_url(text)
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
