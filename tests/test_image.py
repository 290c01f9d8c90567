"""The Dockerfile builds, and the image starts ``linesync`` (opt-in: ``LINESYNC_TEST_IMAGE=1``; minutes).

Needs a container tool that can run containers here: podman (Debian's
``podman``; with ``runc`` where crun cannot handle the host's cgroups), else
the test skips and says exactly why. The image is built offline:

- the base: ``LINESYNC_TEST_PYTHON_IMAGE`` if set (e.g. ``python:3.11-slim``
  where its registry is reachable), else a stand-in made here from Debian's
  packages (debootstrap bookworm + python3 in a venv at /usr/local/python, so
  ``python`` and ``pip`` are on PATH as in the official image), kept as
  ``localhost/linesync-python:3.11`` for later runs;
- the packages: downloaded on the host from requirements.lock (hash-checked),
  mounted into the build as a wheelhouse (``PIP_NO_INDEX=1``,
  ``PIP_FIND_LINKS=/wheels``): the build itself has no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_TAG = "localhost/linesync-python:3.11"
IMAGE_TAG = "localhost/linesync:test"

pytestmark = pytest.mark.skipif(os.environ.get("LINESYNC_TEST_IMAGE") != "1",
                                reason="builds the image (minutes): set LINESYNC_TEST_IMAGE=1")


def _run(argv: list[str], timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


@pytest.fixture(scope="module")
def podman() -> list[str]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("no podman on PATH (Debian: apt-get install podman runc); docker has no daemon here")
    cmd = [exe] + (["--runtime", "runc"] if shutil.which("runc") else [])
    return cmd


# Lowered, not raised: a sandbox without CAP_SYS_RESOURCE cannot give a container more than it has.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _stand_in_base(podman: list[str], tmp: Path) -> str:
    if _run([*podman, "image", "exists", BASE_TAG]).returncode == 0:
        return BASE_TAG
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("no base image: set LINESYNC_TEST_PYTHON_IMAGE, or run as root with debootstrap installed")
    rootfs = tmp / "rootfs"
    boot = _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
                 str(rootfs), "http://deb.debian.org/debian"], timeout=1200)
    if boot.returncode != 0:
        pytest.skip(f"could not make the stand-in base with debootstrap: {_last_line(boot)}")
    venv = _run(["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", "/usr/local/python"])
    assert venv.returncode == 0, venv.stderr
    tar = tmp / "base.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    imported = _run([*podman, "import", "--change",
                     "ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "--change", 'CMD ["python3"]', str(tar), BASE_TAG])
    assert imported.returncode == 0, imported.stderr
    return BASE_TAG


def _wheelhouse(tmp: Path) -> Path:
    """requirements.lock's files for Linux (every marker kept: the base's Python may be another 3.11.x), plus
    the build backend pip needs for `pip install .`."""
    lock = tmp / "all-markers.lock"
    lock.write_text(re.sub(r" ; [^\\\n]*\\$", " \\\\", (ROOT / "requirements.lock").read_text(), flags=re.M))
    wheels = tmp / "wheels"
    pip = ["python3", "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(wheels)]
    got = _run([*pip, "--require-hashes", "--requirement", str(lock)])
    if got.returncode != 0:
        pytest.skip(f"could not download the lock's packages: {_last_line(got)}")
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    got = _run([*pip, *backend, "wheel"])
    if got.returncode != 0:
        pytest.skip(f"could not download the build backend: {_last_line(got)}")
    return wheels


@pytest.fixture(scope="module")
def image(podman, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("image")
    base = os.environ.get("LINESYNC_TEST_PYTHON_IMAGE") or _stand_in_base(podman, tmp)
    probe = _run([*podman, "run", "--rm", *ULIMITS, "--network", "none", base, "python", "--version"])
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {_last_line(probe)}")
    wheels = _wheelhouse(tmp)
    build = _run([*podman, "build", *ULIMITS, "--network", "none", "-v", f"{wheels}:/wheels:ro",
                  "--build-arg", f"PYTHON_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1",
                  "--build-arg", "PIP_FIND_LINKS=/wheels", "-t", IMAGE_TAG, str(ROOT)], timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]  # the Dockerfile itself failed
    return IMAGE_TAG


def test_the_image_starts_linesync(podman, image):
    # As in deploy/k8s/: an unprivileged user, a read-only root, no network needed for --help.
    run = [*podman, "run", "--rm", *ULIMITS, "--network", "none", "--read-only", "--tmpfs", "/tmp", image]
    helped = _run([*run, "linesync", "--help"], timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert {"ingress", "worker", "beat", "doctor"} <= set(re.findall(r"^  (\S+)", helped.stdout, re.M))
    version = _run([*run, "linesync", "--version"], timeout=120)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.stdout.strip() == f"linesync {expected}"
    user = _run([*run, "id", "-u"], timeout=120)
    assert user.stdout.strip() == "10001"  # deploy/k8s/ runs as this uid (runAsNonRoot)
