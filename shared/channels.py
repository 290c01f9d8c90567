"""Several LINE channels in one deployment: the channels file, parsed and checked once.

``LINESYNC_CHANNELS_FILE`` names a TOML file with one table per channel::

    [channels.jp]
    line_channel_secret_env = "LINE_SECRET_JP"        # any key ending in _env names an
    line_channel_access_token_env = "LINE_TOKEN_JP"   # environment variable holding the value
    braze_rest_endpoint = "https://rest.iad-01.braze.com"
    braze_api_key_env = "BRAZE_KEY_JP"
    braze_subscription_group_id = "0b1e..."
    braze_track_rate_limit = "3000/3s"                # optional (per Braze workspace)

Keys are the single-channel environment variables in lower case (:data:`CHANNEL_FIELDS`),
plus ``line_channel_secret_previous`` (a second secret accepted during a rotation).
Settings a channel does not give come from the environment, except the required ones
(:data:`REQUIRED`), which every channel names itself. A malformed file, an unknown key, a
duplicate channel or a missing field stops the process with one line naming the channel
and the field (a :class:`ConfigError` for ``LINESYNC_CHANNELS_FILE``), never a value.

Without the file, the single-channel variables define one channel, ``default``
(:func:`single`). Each channel's Redis keys are its own (``Keys.for_channel``; the
``default`` channel keeps the unscoped keys); channels with the same Braze REST endpoint
and API key share a workspace, whose limiter, pauses and breaker keys are shared
(``Keys.for_workspace``; the workspace of ``default`` keeps the unscoped ones).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError
from shared.keys import DEFAULT_CHANNEL, Keys

if TYPE_CHECKING:
    from shared.config import Settings

VARIABLE = "LINESYNC_CHANNELS_FILE"
# A channel's name is a path segment (/line/events/<name>), a Redis key part and a metric label.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Settings attributes a channel may set (file key: the attribute's environment variable, lower case).
CHANNEL_FIELDS = (
    "line_channel_secret", "line_channel_access_token", "line_api_base_url",
    "braze_rest_endpoint", "braze_api_key", "braze_subscription_group_id", "braze_state_mode",
    "braze_track_rate_limit", "braze_identify_rate_limit",
    "resync_schedule", "resync_on_start", "resync_mark_missing", "forward_event_types",
)
# Attributes every channel must give in the file (never taken from the environment).
REQUIRED = ("line_channel_secret", "line_channel_access_token", "braze_rest_endpoint", "braze_api_key",
            "braze_subscription_group_id")
# Attributes that belong to the Braze workspace: channels sharing one must agree on them.
WORKSPACE_FIELDS = ("braze_track_rate_limit", "braze_identify_rate_limit")
PREVIOUS_SECRET = "line_channel_secret_previous"
ENV_SUFFIX = "_env"
# Which of a channel's secrets verified a webhook (the ingress metric's label).
CURRENT, PREVIOUS = "current", "previous"


@dataclass(frozen=True)
class Channel:
    name: str
    settings: Settings = field(repr=False)  # the deployment's settings with this channel's values
    keys: Keys
    workspace: str  # "" for the workspace of `default` (unscoped keys), else a digest of endpoint + key
    workspace_keys: Keys
    secrets: tuple[tuple[str, bytes], ...] = field(repr=False, default=())  # (CURRENT|PREVIOUS, secret)

    @property
    def workspace_label(self) -> str:
        return self.workspace or DEFAULT_CHANNEL


def workspace_of(endpoint: str | None, api_key: str | None) -> str:
    """A stable, non-reversible name for the Braze workspace (endpoint, API key)."""
    raw = f"{endpoint or ''}\0{api_key or ''}".encode()
    return hashlib.sha256(raw).hexdigest()[:12]


def single(settings: Settings) -> Channel:
    """The one channel of a deployment without a channels file: ``default``, today's keys."""
    keys = Keys(settings.key_prefix)
    previous = settings.line_channel_secret_previous
    return Channel(DEFAULT_CHANNEL, settings, keys, "", keys, _secrets(settings.line_channel_secret, previous))


def _secrets(current: str | None, previous: str | None) -> tuple[tuple[str, bytes], ...]:
    out = []
    if current:
        out.append((CURRENT, current.encode("utf-8")))
    if previous:
        out.append((PREVIOUS, previous.encode("utf-8")))
    return tuple(out)


def _fail(problem: str) -> ConfigError:
    return ConfigError(VARIABLE, problem)


def load(settings: Settings, environ: Mapping[str, str]) -> tuple[Channel, ...]:
    """Read and check ``settings.channels_file``; ``environ`` resolves the ``*_env`` keys."""
    path = settings.channels_file
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise _fail(f"cannot be read ({e.strerror or type(e).__name__})") from None
    return parse(text, settings, environ)


def parse(text: bytes | str, settings: Settings, environ: Mapping[str, str]) -> tuple[Channel, ...]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("is not UTF-8 text") from None
    _check_duplicates(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _fail(f"is not valid TOML ({e})") from None
    unknown = sorted(set(doc) - {"channels"})
    if unknown:
        raise _fail(f"unknown top-level key {unknown[0]!r} (expected only [channels.<name>] tables)")
    tables = doc.get("channels")
    if not isinstance(tables, dict) or not tables:
        raise _fail("names no channel (expected [channels.<name>] tables)")
    channels = [_channel(name, table, settings, environ) for name, table in tables.items()]
    return _with_workspaces(channels, settings)


_HEADER_RE = re.compile(r"^\s*\[\s*channels\s*\.\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*\]", re.M)


def _check_duplicates(text: str) -> None:
    """A channel declared twice, named (tomllib's own message does not say which)."""
    seen: set[str] = set()
    for m in _HEADER_RE.finditer(text):
        name = m.group(1).strip("\"'")
        if name in seen:
            raise _fail(f"channel {name}: declared twice (channel names must be unique)")
        seen.add(name)


def _channel(name: str, table: Any, settings: Settings, environ: Mapping[str, str]) -> dict[str, Any]:
    from shared.config import channel_field, check_transport

    if not NAME_RE.match(name):
        raise _fail(f"channel {name!r}: the name must be lower-case letters, digits, '-' or '_' "
                    "(at most 63, starting with a letter or digit)")
    if not isinstance(table, dict):
        raise _fail(f"channel {name}: must be a table ([channels.{name}])")
    by_key = {channel_field(attr)[0]: attr for attr in CHANNEL_FIELDS}
    raw: dict[str, str] = {}
    for key, value in table.items():
        base = key[: -len(ENV_SUFFIX)] if key.endswith(ENV_SUFFIX) else key
        if base not in by_key and base != PREVIOUS_SECRET:
            raise _fail(f"channel {name}: unknown key {key!r}")
        if base in raw:
            raise _fail(f"channel {name}: {base} is given twice (as {base} and {base}{ENV_SUFFIX})")
        if key.endswith(ENV_SUFFIX):
            if not isinstance(value, str) or not value:
                raise _fail(f"channel {name}: {key} must name an environment variable")
            if not environ.get(value):
                raise _fail(f"channel {name}: {key} names {value}, which is not set")
            raw[base] = environ[value]
        else:
            raw[base] = _text(name, key, value)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key == PREVIOUS_SECRET:
            continue
        attr = by_key[key]
        try:
            values[attr] = channel_field(attr)[1](text)
        except ValueError as e:
            raise _fail(f"channel {name}: {key} is malformed ({e})") from None
    state_mode = values.get("braze_state_mode", settings.braze_state_mode)
    for attr in REQUIRED:
        if attr == "braze_subscription_group_id" and state_mode == "attributes":
            continue
        if attr not in values:
            key = channel_field(attr)[0]
            raise _fail(f"channel {name}: {key} (or {key}{ENV_SUFFIX}) is required but not set")
    try:
        check_transport({**values, "allow_insecure_http": settings.allow_insecure_http})
    except ConfigError as e:
        raise _fail(f"channel {name}: {e.variable.lower()} {e.problem}") from None
    previous = raw.get(PREVIOUS_SECRET)
    if previous is not None and not previous.strip():
        raise _fail(f"channel {name}: {PREVIOUS_SECRET} must not be empty")
    return {"name": name, "values": values, "previous": previous}


def _text(name: str, key: str, value: Any) -> str:
    """A TOML value as the text its environment variable would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise _fail(f"channel {name}: {key} must be a string")


def _with_workspaces(parsed: list[dict[str, Any]], settings: Settings) -> tuple[Channel, ...]:
    from shared.config import channel_field

    base_keys_ws = None
    for p in parsed:
        if p["name"] == DEFAULT_CHANNEL:
            v = p["values"]
            base_keys_ws = workspace_of(v["braze_rest_endpoint"], v["braze_api_key"])
    seen: dict[str, dict[str, Any]] = {}
    out = []
    for p in parsed:
        v = p["values"]
        ws = workspace_of(v["braze_rest_endpoint"], v["braze_api_key"])
        first = seen.setdefault(ws, p)
        for attr in WORKSPACE_FIELDS:
            if first is not p and first["values"].get(attr) != v.get(attr):
                raise _fail(f"channel {p['name']}: {channel_field(attr)[0]} differs from channel {first['name']}'s, "
                            "which uses the same Braze workspace (REST endpoint and API key): give both the same")
        out.append((p, "" if ws == base_keys_ws else ws))
    return tuple(_build(p, ws, settings) for p, ws in out)


def _build(p: dict[str, Any], workspace: str, settings: Settings) -> Channel:
    keys = Keys(settings.key_prefix)
    chan_settings = settings.replace(**p["values"], line_channel_secret_previous=p["previous"])
    return Channel(p["name"], chan_settings, keys.for_channel(p["name"]), workspace, keys.for_workspace(workspace),
                   _secrets(chan_settings.line_channel_secret, p["previous"]))
