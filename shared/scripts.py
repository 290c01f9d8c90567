"""The Lua scripts in shared/lua/, loaded once per client (EVALSHA, reloaded if flushed)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

_DIR = Path(__file__).with_name("lua")


@cache
def _source(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text()


def script(r: redis.Redis, name: str) -> Script:
    """A callable Script for shared/lua/<name>.lua bound to ``r``."""
    cache_ = r.__dict__.setdefault("_linesync_scripts", {})
    s = cache_.get(name)
    if s is None:
        s = cache_[name] = r.register_script(_source(name))
    return s
