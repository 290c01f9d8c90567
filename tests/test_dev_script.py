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
    assert f"--require-hashes --no-deps --requirement {root}/requirements-test.lock" in lock
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


def test_lock_resolves_everything_then_the_runtime_part_held_to_the_same_versions(dev, tmp_path):
    full, runtime = dev.lock_argvs("/x/uv", tmp_path)
    for argv in (full, runtime):
        assert argv[:4] == ["/x/uv", "pip", "compile", "pyproject.toml"]
        assert "--generate-hashes" in argv and "--universal" in argv  # hashed, one lock for every platform
        assert argv[argv.index("--python-version") + 1] == "3.11"
        assert argv[argv.index("--custom-compile-command") + 1] == "python3 dev.py lock"
    assert [full[i + 1] for i, a in enumerate(full) if a == "--extra"] == list(dev.EXTRAS)
    assert full[full.index("--output-file") + 1] == str(tmp_path / dev.TEST_LOCK)
    assert "--extra" not in runtime
    assert runtime[runtime.index("--constraint") + 1] == str(tmp_path / dev.TEST_LOCK)
    assert runtime[runtime.index("--output-file") + 1] == str(tmp_path / dev.LOCK)


class _Done:
    def __init__(self, returncode: int):
        self.returncode, self.stdout, self.stderr = returncode, "", "resolution failed"


def _fake_compile(fail_on: str = ""):
    """A stand-in for ``uv pip compile``: writes its --output-file, or fails for the one named ``fail_on``."""
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        out = Path(argv[argv.index("--output-file") + 1])
        if out.name == fail_on:
            return _Done(1)
        via = argv[argv.index("--constraint") + 1] if "--constraint" in argv else "pyproject.toml"
        out.write_text(f"# made for {out.name}\nx==1 \\\n    --hash=sha256:{'0' * 64}\n    # via -c {via}\n")
        return _Done(0)
    return run, calls


def test_lock_writes_both_files_with_uv(dev, tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    run, calls = _fake_compile()
    dev.lock(root, install_uv=lambda venv: "/x/uv", run=run)
    assert [c[0] for c in calls] == ["/x/uv", "/x/uv"]
    assert (root / dev.TEST_LOCK).read_text().startswith(f"# made for {dev.TEST_LOCK}")
    assert (root / dev.LOCK).read_text().startswith(f"# made for {dev.LOCK}")
    assert (root / dev.LOCK).read_text().endswith(f"# via -c {dev.TEST_LOCK}\n")  # not the throw-away copy
    assert not list(root.glob("*.tmp"))


def test_a_failed_resolution_changes_no_lock_file(dev, tmp_path, capsys):
    root = tmp_path / "project"
    root.mkdir()
    (root / dev.TEST_LOCK).write_text("old test lock\n")
    (root / dev.LOCK).write_text("old lock\n")
    run, calls = _fake_compile(fail_on=dev.LOCK)  # the second run fails after the first succeeded
    with pytest.raises(SystemExit) as exc:
        dev.lock(root, install_uv=lambda venv: "/x/uv", run=run)
    assert exc.value.code == 1 and len(calls) == 2
    assert (root / dev.TEST_LOCK).read_text() == "old test lock\n"
    assert (root / dev.LOCK).read_text() == "old lock\n"
    assert "the lock files were not changed" in capsys.readouterr().err


def _pins(path: Path) -> dict[str, set[str]]:
    """name -> pinned versions (one per environment marker) of a hashed lock file; each pin must carry hashes."""
    out: dict[str, set[str]] = {}
    hashed: set[str] = set()
    name = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" "):  # a continuation line: a hash of the pin above
            if line.strip().startswith("--hash=sha256:") and name:
                hashed.add(name)
            continue
        raw, sep, version = line.split(";")[0].rstrip(" \\").partition("==")
        assert sep and version.strip(), f"{path.name}: not pinned: {line!r}"
        name = re.sub(r"[-_.]+", "-", raw.strip()).lower()
        out.setdefault(name, set()).add(version.strip())
    missing = set(out) - hashed
    assert not missing, f"{path.name}: pins without a hash: {sorted(missing)}"
    return out


def test_pins_are_read_with_their_hashes(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("# header\nflask==3.1.3 \\\n    --hash=sha256:ab \\\n    --hash=sha256:cd\n    # via x\n"
                    "deprecated==1.3.1 ; python_full_version < '3.12' \\\n    --hash=sha256:ef\n"
                    "Deprecated==3.0.1 ; python_full_version >= '3.12' \\\n    --hash=sha256:01\n")
    assert _pins(lock) == {"flask": {"3.1.3"}, "deprecated": {"1.3.1", "3.0.1"}}
    lock.write_text("flask==3.1.3\nredis==8.1.0 \\\n    --hash=sha256:ab\n")
    with pytest.raises(AssertionError, match="without a hash: \\['flask'\\]"):
        _pins(lock)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(re.match(r"\d+", part).group()) for part in v.split(".") if re.match(r"\d+", part))


def test_the_lock_files_are_hashed_and_satisfy_pyproject(dev):
    """Every requirement of pyproject.toml is pinned, with hashes, at or above its floor (pip check says the rest)."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    full, runtime = _pins(ROOT / dev.TEST_LOCK), _pins(ROOT / dev.LOCK)
    for name, versions in runtime.items():  # the image runs what the tests ran
        assert versions <= full.get(name, set()), f"{name}: {versions} in {dev.LOCK}, {full.get(name)} in the test lock"
    for lock, requirements in ((runtime, dev.requirements(pyproject)),
                               (full, dev.requirements(pyproject, dev.EXTRAS))):
        for req in requirements:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([0-9][0-9.]*)", req)
            assert m, f"pyproject.toml: {req!r} is not `name>=version` (teach this test)"
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            assert name in lock, f"{req} is not in the lock file: run `python3 dev.py lock`"
            for v in lock[name]:
                assert _version(v) >= _version(m.group(3)), f"{name}=={v} is below {req}"


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
    # ... and the integration tests once more against the embedded Valkey (the first run: redis-server).
    assert "LINESYNC_TEST_REDIS_SERVER=embedded python3 dev.py test tests/integration\n" in text
    assert "need+=(redis-server)" in text
    assert "LINESYNC_TEST_IMAGE=1 python3 dev.py test tests/test_image.py" in text
