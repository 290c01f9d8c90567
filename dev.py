#!/usr/bin/env python3
"""Set up and run linesync on a fresh machine: needs only Python 3.11+ (no Redis, no make).

    python3 dev.py up [linesync up options]   # everything, with an embedded Redis and sandboxes
    python3 dev.py test [pytest args]         # the test suite (default: all of it)

Both first make sure ``.venv`` exists and holds ``pip install -e '.[test,embedded]'``.
The install is redone only when ``pyproject.toml`` (or the extras below, or the
set of top-level packages) changed since the last successful one: a stamp file
in ``.venv`` records what was installed. The install is editable, so code
changes need no reinstall.

Standard library only, because it runs before anything is installed.
POSIX only (Linux, macOS): Windows is out of scope.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# The optional dependency groups dev.py installs (pyproject.toml [project.optional-dependencies]).
EXTRAS = ("test", "embedded")
# Name of the stamp file, inside the venv so that deleting .venv forgets it too.
STAMP_NAME = ".linesync-dev-stamp"
# Bump to force every developer's next `dev.py` run to reinstall.
STAMP_VERSION = "1"
MIN_PYTHON = (3, 11)

USAGE = """usage: python3 dev.py up [linesync up options]
       python3 dev.py test [pytest args]

  up     create/refresh .venv, then run `linesync up` (embedded Redis, sandboxes,
         ingress, worker and beat; Ctrl-C stops all)
  test   create/refresh .venv, then run the test suite with pytest
"""


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def top_level_packages(root: Path) -> tuple[str, ...]:
    """Directories of ``root`` that are Python packages.

    An editable install records the packages that existed when it ran; one
    added later (or an empty directory that became a package) needs a reinstall.
    """
    return tuple(sorted(p.parent.name for p in root.glob("*/__init__.py")))


def wanted_stamp(pyproject: bytes, extras: tuple[str, ...] = EXTRAS, packages: tuple[str, ...] = ()) -> str:
    """What the stamp must say for the venv to be up to date with ``pyproject``."""
    digest = hashlib.sha256(pyproject).hexdigest()
    return (
        f"v{STAMP_VERSION} extras={','.join(extras)} packages={','.join(packages)} "
        f"pyproject-sha256={digest}\n"
    )


def needs_install(stamp_path: Path, wanted: str) -> bool:
    try:
        return stamp_path.read_text() != wanted
    except OSError:
        return True


def write_stamp(stamp_path: Path, wanted: str) -> None:
    tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    tmp.write_text(wanted)
    os.replace(tmp, stamp_path)


def pip_install_argv(python: Path, root: Path = ROOT, extras: tuple[str, ...] = EXTRAS) -> list[str]:
    return [
        str(python), "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check",
        "--editable", f"{root}[{','.join(extras)}]",
    ]


def create_venv(venv: Path) -> None:
    print(f"dev.py: creating {venv.name}/ with {sys.executable}", file=sys.stderr)
    proc = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
    )
    if proc.returncode != 0 or not venv_bin(venv, "python").exists():
        sys.stderr.write(proc.stdout + proc.stderr)
        die(
            "could not create the virtual environment; on Debian/Ubuntu install the "
            "`python3-venv` package, then remove .venv and try again",
            proc.returncode or 1,
        )


def ensure_installed(venv: Path = VENV, root: Path = ROOT) -> Path:
    """Make ``venv`` exist and match pyproject.toml; return its python."""
    python = venv_bin(venv, "python")
    if not python.exists():
        if venv.exists():
            die(f"{venv} exists but has no bin/python (made on another OS?): remove it and retry")
        create_venv(venv)
    stamp = venv / STAMP_NAME
    wanted = wanted_stamp((root / "pyproject.toml").read_bytes(), EXTRAS, top_level_packages(root))
    if not needs_install(stamp, wanted):
        return python
    print(
        f"dev.py: installing linesync[{','.join(EXTRAS)}] into {venv.name}/ "
        "(first run, or pyproject.toml or the package list changed) ...",
        file=sys.stderr,
        flush=True,
    )
    # --quiet still prints errors and warnings; everything is shown if it fails.
    proc = subprocess.run(
        pip_install_argv(python, root), cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        die(f"pip install failed (exit {proc.returncode}); nothing was recorded, the next run retries", proc.returncode)
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    write_stamp(stamp, wanted)
    return python


def die(message: str, code: int = 1) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    raise SystemExit(code)


def command_argv(command: str, args: list[str], venv: Path = VENV) -> list[str]:
    """The program dev.py runs once the venv is ready."""
    if command == "up":
        return [str(venv_bin(venv, "linesync")), "up", *args]
    if command == "test":
        return [str(venv_bin(venv, "python")), "-m", "pytest", *args]
    raise ValueError(command)


def main(argv: list[str]) -> int:
    if os.name != "posix":
        die("Windows is not supported; use WSL2, or Docker with compose.yaml", 2)
    if sys.version_info < MIN_PYTHON:
        die(f"linesync needs Python {'.'.join(map(str, MIN_PYTHON))}+, this is {sys.version.split()[0]}", 2)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command not in ("up", "test"):
        print(USAGE, end="", file=sys.stderr)
        return 2
    ensure_installed()
    target = command_argv(command, args)
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: signals (Ctrl-C) and the exit code go straight to/from the real program.
    os.execv(target[0], target)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
