"""dev.py's helpers: the install stamp, the commands it runs. Nothing is installed."""

from __future__ import annotations

import importlib.util
import os
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


def test_stamp_changes_with_pyproject_and_extras(dev):
    a = dev.wanted_stamp(b"[project]\nname = 'x'\n")
    assert a == dev.wanted_stamp(b"[project]\nname = 'x'\n")
    assert a != dev.wanted_stamp(b"[project]\nname = 'y'\n")
    assert a != dev.wanted_stamp(b"[project]\nname = 'x'\n", extras=("test",))
    assert a != dev.wanted_stamp(b"[project]\nname = 'x'\n", packages=("shared",))


def test_needs_install_until_the_stamp_matches(dev, tmp_path):
    stamp = tmp_path / "stamp"
    wanted = dev.wanted_stamp(b"deps")
    assert dev.needs_install(stamp, wanted)  # no stamp yet
    dev.write_stamp(stamp, wanted)
    assert not dev.needs_install(stamp, wanted)
    assert dev.needs_install(stamp, dev.wanted_stamp(b"other deps"))
    assert [p.name for p in tmp_path.iterdir()] == ["stamp"]  # no temp file left behind


def _fake_venv(tmp_path: Path, exit_code: int = 0) -> tuple[Path, Path, Path]:
    """A 'venv' whose python only records how it was called."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit {exit_code}\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root, venv, calls


def test_installs_once_then_again_only_when_pyproject_changes(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path)
    assert dev.ensure_installed(venv, root) == venv / "bin" / "python"
    assert dev.ensure_installed(venv, root) == venv / "bin" / "python"
    assert len(calls.read_text().splitlines()) == 1
    first = calls.read_text()
    assert "-m pip install" in first and "--editable" in first and f"{root}[test,embedded]" in first

    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\ndependencies = ['x']\n")
    dev.ensure_installed(venv, root)
    assert len(calls.read_text().splitlines()) == 2

    (root / "newpkg").mkdir()
    dev.ensure_installed(venv, root)
    assert len(calls.read_text().splitlines()) == 2  # an empty directory is no package
    (root / "newpkg" / "__init__.py").write_text("")
    dev.ensure_installed(venv, root)
    assert len(calls.read_text().splitlines()) == 3


def test_failed_install_records_nothing_and_exits_with_pips_code(dev, tmp_path, capsys):
    root, venv, calls = _fake_venv(tmp_path, exit_code=3)
    with pytest.raises(SystemExit) as exc:
        dev.ensure_installed(venv, root)
    assert exc.value.code == 3
    assert not (venv / dev.STAMP_NAME).exists()
    assert "pip install failed" in capsys.readouterr().err


def test_commands_run_from_the_venv(dev, tmp_path):
    venv = tmp_path / ".venv"
    assert dev.command_argv("up", ["--bind", "127.0.0.1:9000"], venv) == [
        str(venv / "bin" / "linesync"), "up", "--bind", "127.0.0.1:9000"]
    assert dev.command_argv("test", [], venv) == [str(venv / "bin" / "python"), "-m", "pytest"]
    assert dev.command_argv("test", ["-x", "tests/shared"], venv)[-2:] == ["-x", "tests/shared"]


def test_usage_errors_do_not_install(dev, capsys, monkeypatch):
    monkeypatch.setattr(dev, "ensure_installed", lambda *a: pytest.fail("must not install"))
    assert dev.main([]) == 2
    assert dev.main(["--help"]) == 0
    assert dev.main(["deploy"]) == 2
    assert "python3 dev.py test" in capsys.readouterr().out


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
