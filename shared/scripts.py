"""The Lua scripts in shared/lua/, loaded once per client (EVALSHA, reloaded if flushed).

A script that must run when Redis is at ``maxmemory`` (``noeviction``) opens
with ``#!lua flags=allow-oom``: the workers' scripts free more than they write
(applying a batch deletes its stream entries; finishing a batch deletes it),
so they are what drains a full Redis. Redis < 7 knows no such line: it is
left out there (and those servers refuse the scripts' writes when full).

A line ``--#include <name>`` pulls in the library shared/lua/lib/<name>.lua (code
shared by several scripts: the state layout, the dedupe store). The library is
put on that one line (its comment lines dropped, the rest joined by spaces), so
the line numbers in an error Redis reports are those of the script's file. A
library therefore has no comment after code on a line, and no line that starts
with ``(`` (which Lua would read as a call on the line before).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

_DIR = Path(__file__).with_name("lua")
INCLUDE = "--#include "
# Script flags (the "#!lua flags=..." first line) need Redis 7.
FLAGS_SINCE_MAJOR = 7


@cache
def _source(name: str, flags: bool = True) -> str:
    text = "\n".join(_expand(line) for line in (_DIR / f"{name}.lua").read_text().split("\n"))
    if not flags and text.startswith("#!"):
        text = "--" + text[2:]  # keep the line numbers; the flags become a comment
    return text


@cache
def library(name: str) -> str:
    """shared/lua/lib/<name>.lua as one line of code."""
    code = []
    for line in (_DIR / "lib" / f"{name}.lua").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.startswith("(") or "--" in stripped:
            raise ValueError(f"lua/lib/{name}.lua: {stripped!r} cannot be joined on one line")
        code.append(stripped)
    return " ".join(code)


def _expand(line: str) -> str:
    return library(line[len(INCLUDE):].strip()) if line.startswith(INCLUDE) else line


def supports_flags(r) -> bool:
    """Does the server behind ``r`` (a client or a pipeline) take script flags?

    Asked once per connection pool; False for a stand-in client. A Redis error
    propagates, as the script call itself would have failed.
    """
    pool = getattr(r, "connection_pool", None)
    if pool is None:
        return False
    known = pool.__dict__.get("_linesync_script_flags")
    if known is None:
        try:
            version = redis.Redis(connection_pool=pool).info("server")["redis_version"]
            major = int(str(version).split(".")[0])
        except (KeyError, ValueError):
            major = 0
        known = pool.__dict__["_linesync_script_flags"] = major >= FLAGS_SINCE_MAJOR
    return known


def script(r: redis.Redis, name: str) -> Script:
    """A callable Script for shared/lua/<name>.lua bound to ``r``."""
    cache_ = r.__dict__.setdefault("_linesync_scripts", {})
    s = cache_.get(name)
    if s is None:
        s = cache_[name] = r.register_script(_source(name, supports_flags(r)))
    return s
