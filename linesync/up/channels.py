"""`linesync up` with a channels file: stand-ins for every channel that names no real service.

For each ``[channels.<name>]`` table of ``LINESYNC_CHANNELS_FILE``:

- no ``braze_rest_endpoint``: a Braze sandbox of its own (its own workspace: API key
  ``sandbox-braze-<name>``, and a subscription group id unless the table gives one);
- no ``line_api_base_url``: a LINE sandbox of its own (access token ``sandbox-line-<name>``,
  ``SANDBOX_FOLLOWERS`` followers, its webhook URL ``<public URL>/line/events/<name>``);
- no ``line_channel_secret``: one made once and kept in ``<data dir>/channel_secret-<name>``.

What the children read is a completed copy, ``<data dir>/channels.toml`` (owner-only, it may
hold secrets); the user's file is never written. One stand-in per channel keeps them apart the
way real workspaces and channels are: a Braze sandbox accepts one API key, a LINE sandbox signs
with one secret. :func:`plan` is pure but for the secrets it makes.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from linesync.supervisor import ProcessSpec
from linesync.up.local_files import channel_secret
from linesync.up.plan import SANDBOX_FOLLOWERS, SANDBOX_SUBSCRIPTION_GROUP_ID, TIER_SANDBOX
from shared.channels import VARIABLE
from shared.config import WEBHOOK_PATH
from shared.errors import ConfigError
from shared.keys import DEFAULT_CHANNEL


@dataclass(frozen=True)
class ChannelStandIns:
    """What `up` provides for one channel (None: the file names the real service)."""

    name: str
    webhook_url: str
    braze_port: int | None = None
    line_port: int | None = None
    values: dict = field(default_factory=dict)  # keys added to the channel's table


@dataclass(frozen=True)
class ChannelsPlan:
    path: Path  # the completed copy the children read
    text: str
    channels: tuple[ChannelStandIns, ...]
    specs: tuple[ProcessSpec, ...]

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(p for c in self.channels for p in (c.braze_port, c.line_port) if p is not None)


def _given(table: Mapping, key: str) -> bool:
    return bool(table.get(key) or table.get(key + "_env"))


def _group_id(i: int) -> str:
    """UUID-shaped like a real Braze id (doctor accepts it), one per channel."""
    return SANDBOX_SUBSCRIPTION_GROUP_ID[:-4] + f"{i:04x}"


def plan(env: Mapping[str, str], data_dir: Path, *, public_url: str, python: str,
         free_port) -> ChannelsPlan:
    source = env[VARIABLE]
    try:
        doc = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(VARIABLE, f"cannot be read as TOML ({type(e).__name__})") from None
    tables = doc.get("channels")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(VARIABLE, "names no channel (expected [channels.<name>] tables)")
    cli = [python, "-m", "linesync.cli"]
    stand_ins, specs, out = [], [], {"channels": {}}
    for i, (name, table) in enumerate(tables.items()):
        table = dict(table) if isinstance(table, dict) else {}
        hook = public_url.rstrip("/") + WEBHOOK_PATH + ("" if name == DEFAULT_CHANNEL else f"/{name}")
        added: dict = {}
        braze_port = line_port = None
        if not _given(table, "line_channel_secret"):
            added["line_channel_secret"] = channel_secret(data_dir / f"channel_secret-{name}")
        if not _given(table, "braze_rest_endpoint"):
            braze_port = free_port()
            added["braze_rest_endpoint"] = f"http://127.0.0.1:{braze_port}"
            added["braze_api_key"] = f"sandbox-braze-{name}"
            if not _given(table, "braze_subscription_group_id"):
                added["braze_subscription_group_id"] = _group_id(i + 1)
            specs.append(ProcessSpec(f"braze-{name}", [*cli, "sandbox", "braze", "--bind", f"127.0.0.1:{braze_port}",
                                                       "--api-key", added["braze_api_key"]], env, tier=TIER_SANDBOX))
        if not _given(table, "line_api_base_url"):
            line_port = free_port()
            added["line_api_base_url"] = f"http://127.0.0.1:{line_port}"
            added["line_channel_access_token"] = f"sandbox-line-{name}"
            secret = added.get("line_channel_secret") or table.get("line_channel_secret") or env.get(
                table.get("line_channel_secret_env", ""), "")
            # The secret reaches the sandbox through its environment, not argv (`ps`).
            specs.append(ProcessSpec(f"line-{name}", [*cli, "sandbox", "line", "--bind", f"127.0.0.1:{line_port}",
                                                      "--access-token", added["line_channel_access_token"],
                                                      "--followers", str(SANDBOX_FOLLOWERS),
                                                      "--webhook-endpoint", hook],
                                     {**env, "LINE_CHANNEL_SECRET": secret}, tier=TIER_SANDBOX))
        for key in added:  # a value `up` provides replaces the table's *_env spelling of it
            table.pop(key + "_env", None)
        out["channels"][name] = {**table, **added}
        stand_ins.append(ChannelStandIns(name, hook, braze_port, line_port, added))
    return ChannelsPlan(data_dir / "channels.toml", dumps(out), tuple(stand_ins), tuple(specs))


def dumps(doc: dict) -> str:
    """The channels document as TOML (strings, booleans, numbers and lists of strings only)."""
    lines = ["# Written by `linesync up` from LINESYNC_CHANNELS_FILE, with its local stand-ins."]
    for name, table in doc["channels"].items():
        lines += ["", f"[channels.{json.dumps(name)}]"]
        for key, value in table.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = str(value)
            elif isinstance(value, list):
                text = "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
            else:
                text = json.dumps(str(value))
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def describe(p: ChannelsPlan) -> list[str]:
    """Lines for `up`'s banner: each channel's webhook URL and stand-ins."""
    out = []
    for c in p.channels:
        extra = []
        if c.braze_port:
            extra.append(f"Braze sandbox http://127.0.0.1:{c.braze_port}")
        if c.line_port:
            extra.append(f"LINE sandbox http://127.0.0.1:{c.line_port}")
        out.append(f"  channel {c.name}: webhook {c.webhook_url}" + (f"; {', '.join(extra)}" if extra else ""))
    return out
