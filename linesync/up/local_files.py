"""What `linesync up` keeps in its data directory (``.linesync/`` by default).

``channel_secret`` (a generated LINE channel secret), ``env`` (what `up`
provided, for other shells), ``up.lock`` (one `up` per directory), and
``redis/`` (the embedded Redis's data, see linesync/up/plan.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

from shared.errors import LinesyncError

# Where `up` keeps its state, relative to the current directory.
DEFAULT_DATA_DIR = ".linesync"


def channel_secret(path: Path) -> str:
    """The secret kept in ``path``, created on first use (readable by the owner only)."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    secret = secrets.token_hex(16)  # LINE channel secrets are 32 hex digits too
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def env_file_text(variables: Mapping[str, str]) -> str:
    lines = ["# Written by `linesync up`; load with: set -a; . .linesync/env; set +a"]
    lines += [f"{k}={shlex.quote(v)}" for k, v in variables.items()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def merged_environment() -> dict[str, str]:
    """``./.env`` overlaid by the process environment, as shared.config reads them."""
    env: dict[str, str] = {}
    if os.path.exists(".env"):
        from dotenv import dotenv_values

        env = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    return {**env, **os.environ}


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """One `linesync up` per data directory: two would share one Redis data dir."""
    with open(data_dir / "up.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LinesyncError(
                f"another `linesync up` is running with {data_dir}/ (stop it, or use --data-dir)"
            ) from None
        yield
