#!/usr/bin/env python3
"""Set up and run linesync on a fresh machine: needs only Python 3.11+ (no Redis, no make).

    python3 dev.py up [linesync up options]   # everything, with an embedded Redis and sandboxes
    python3 dev.py test [pytest args]         # the test suite (default: all of it)
    python3 dev.py lock                       # re-resolve the dependencies and rewrite the lock files

``up`` and ``test`` first make sure ``.venv`` exists and holds the pinned
dependencies of ``requirements-test.lock`` (runtime + the extras below;
``pip install --require-hashes --no-deps``: every file is checked against the
lock's sha256 hashes, nothing else is resolved), then linesync itself
(``pip install --no-deps -e .``), then ``pip check``. The
install is redone only when ``pyproject.toml``, the lock file (or the extras
below, or the set of top-level packages) changed since the last successful
one: a stamp file in ``.venv`` records what was installed. The install is
editable, so code changes need no reinstall.

``lock`` resolves ``pyproject.toml``'s dependencies afresh with uv's
``uv pip compile --universal --generate-hashes`` (uv, pinned below, is installed
into a throw-away venv from the package index) and writes
``requirements-test.lock`` (runtime + extras, for dev.py and CI) and
``requirements.lock`` (runtime only, constrained to the same versions, for the
Docker image). ``--universal``: one lock for every platform and Python >= 3.11,
with environment markers where they differ; every pin carries the sha256 of
each of its files. Run it after changing dependencies in pyproject.toml, or to
take newer releases, and commit both files.

Standard library only, because it runs before anything is installed.
POSIX only (Linux, macOS): Windows is out of scope.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# The optional dependency groups dev.py installs (pyproject.toml [project.optional-dependencies]).
EXTRAS = ("test", "embedded")
# Name of the stamp file, inside the venv so that deleting .venv forgets it too.
STAMP_NAME = ".linesync-dev-stamp"
# Bump to force every developer's next `dev.py` run to reinstall.
STAMP_VERSION = "2"
MIN_PYTHON = (3, 11)
# Pinned versions with their sha256 hashes: runtime only (the Docker image) ...
LOCK = "requirements.lock"
# ... and runtime + EXTRAS (dev.py, hence CI). Both hashed, made by `dev.py lock` with:
TEST_LOCK = "requirements-test.lock"
LOCK_TOOL = "uv==0.13.9"

USAGE = """usage: python3 dev.py up [linesync up options]
       python3 dev.py test [pytest args]
       python3 dev.py lock

  up     create/refresh .venv, then run `linesync up` (embedded Redis, sandboxes,
         ingress, worker and beat; Ctrl-C stops all)
  test   create/refresh .venv, then run the test suite with pytest
  lock   resolve pyproject.toml's dependencies again with uv (needs the package index)
         and rewrite the hashed requirements.lock and requirements-test.lock
"""


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def top_level_packages(root: Path) -> tuple[str, ...]:
    """Directories of ``root`` that are Python packages.

    An editable install records the packages that existed when it ran; one
    added later (or an empty directory that became a package) needs a reinstall.
    """
    return tuple(sorted(p.parent.name for p in root.glob("*/__init__.py")))


def wanted_stamp(pyproject: bytes, extras: tuple[str, ...] = EXTRAS, packages: tuple[str, ...] = (),
                 lock: bytes = b"") -> str:
    """What the stamp must say for the venv to be up to date with ``pyproject`` and the ``lock`` file."""
    digest = hashlib.sha256(pyproject).hexdigest()
    return (
        f"v{STAMP_VERSION} extras={','.join(extras)} packages={','.join(packages)} "
        f"pyproject-sha256={digest} lock-sha256={hashlib.sha256(lock).hexdigest()}\n"
    )


def needs_install(stamp_path: Path, wanted: str) -> bool:
    try:
        return stamp_path.read_text() != wanted
    except OSError:
        return True


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_stamp(stamp_path: Path, wanted: str) -> None:
    write_atomically(stamp_path, wanted)


def pip_install_argvs(python: Path, root: Path = ROOT) -> list[list[str]]:
    """The pinned dependencies (each file checked against the lock's hashes), then linesync itself without
    resolving anything, then a consistency check.

    ``pip check`` fails when the lock file is incomplete or no longer satisfies
    pyproject.toml (a floor raised without running ``dev.py lock``).
    """
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    return [
        [*pip, "install", "--quiet", "--require-hashes", "--no-deps", "--requirement", str(root / TEST_LOCK)],
        [*pip, "install", "--quiet", "--no-deps", "--editable", str(root)],
        [*pip, "check"],
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
    try:
        lock = (root / TEST_LOCK).read_bytes()
    except FileNotFoundError:
        die(f"{TEST_LOCK} is missing: run `python3 dev.py lock` to create it")
    stamp = venv / STAMP_NAME
    wanted = wanted_stamp((root / "pyproject.toml").read_bytes(), EXTRAS, top_level_packages(root), lock)
    if not needs_install(stamp, wanted):
        return python
    print(
        f"dev.py: installing {TEST_LOCK} and linesync into {venv.name}/ "
        f"(first run, or pyproject.toml, {TEST_LOCK} or the package list changed) ...",
        file=sys.stderr,
        flush=True,
    )
    for argv in pip_install_argvs(python, root):
        # --quiet still prints errors and warnings; everything is shown if it fails.
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            what = "pip check" if argv[-1] == "check" else "pip install"
            hint = f" (is {TEST_LOCK} up to date? `python3 dev.py lock`)" if what == "pip check" else ""
            die(f"{what} failed (exit {proc.returncode}){hint}; nothing was recorded, the next run retries",
                proc.returncode)
        if proc.stderr.strip():
            sys.stderr.write(proc.stderr)
    write_stamp(stamp, wanted)
    return python


def requirements(pyproject: bytes, extras: tuple[str, ...] = ()) -> list[str]:
    """The requirement strings of pyproject.toml: its dependencies, then those of ``extras``."""
    project = tomllib.loads(pyproject.decode())["project"]
    optional = project.get("optional-dependencies", {})
    return [*project.get("dependencies", []), *(r for e in extras for r in optional[e])]


def lock_argvs(uv: str, tmp: Path, python: str = ".".join(map(str, MIN_PYTHON))) -> list[list[str]]:
    """The two ``uv pip compile`` runs: everything (runtime + EXTRAS), then the runtime alone held to the
    versions of the first (so the image runs what the tests ran). Both write into ``tmp``."""
    common = [uv, "pip", "compile", "pyproject.toml", "--universal", "--python-version", python,
              "--generate-hashes", "--quiet", "--custom-compile-command", "python3 dev.py lock"]
    full = tmp / TEST_LOCK
    return [
        [*common, *(a for e in EXTRAS for a in ("--extra", e)), "--output-file", str(full)],
        [*common, "--constraint", str(full), "--output-file", str(tmp / LOCK)],
    ]


def install_uv(venv: Path) -> str:
    """A throw-away venv holding LOCK_TOOL; returns its uv executable."""
    create_venv(venv)
    proc = subprocess.run([str(venv_bin(venv, "python")), "-m", "pip", "--disable-pip-version-check", "install",
                           "--quiet", LOCK_TOOL], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        die(f"could not install {LOCK_TOOL} (exit {proc.returncode}); the lock files were not changed",
            proc.returncode)
    return str(venv_bin(venv, "uv"))


def lock(root: Path = ROOT, install_uv=install_uv, run=subprocess.run) -> None:
    """Resolve pyproject.toml again; rewrite TEST_LOCK and LOCK only when both resolutions succeeded."""
    with tempfile.TemporaryDirectory(prefix="linesync-lock-") as tmp_name:
        tmp = Path(tmp_name)
        uv = install_uv(tmp / "venv")
        whats = (f"linesync[{','.join(EXTRAS)}]", "the runtime dependencies alone, at the same versions")
        for what, argv in zip(whats, lock_argvs(uv, tmp)):
            print(f"dev.py: resolving {what} (uv pip compile) ...", file=sys.stderr, flush=True)
            proc = run(argv, cwd=root, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                die(f"uv pip compile failed (exit {proc.returncode}); the lock files were not changed",
                    proc.returncode)
        for name in (TEST_LOCK, LOCK):
            # uv's "via -c <file>" names the throw-away copy: name the committed file instead.
            write_atomically(root / name, (tmp / name).read_text().replace(str(tmp / TEST_LOCK), TEST_LOCK))
    print(f"dev.py: wrote {TEST_LOCK} and {LOCK} (hashed)", file=sys.stderr)


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
    if command == "lock" and not args:
        lock()
        return 0
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
