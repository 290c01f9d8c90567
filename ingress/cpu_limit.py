"""How many CPUs this process may use: the CPUs it may run on, lowered by a cgroup CPU quota.

A container with a CPU limit (Kubernetes ``resources.limits.cpu``, ``docker run
--cpus``) still sees every CPU of its host: ``os.sched_getaffinity`` says 32 on
a 32-core node while the kernel throttles it to 1 CPU of time. The limit is a
quota per period in the cgroup filesystem:

- cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``
  (no limit), in the process's cgroup (``0::/path`` in ``/proc/self/cgroup``)
  and any of its ancestors;
- cgroup v1: ``cpu.cfs_quota_us`` (``-1``: no limit) and ``cpu.cfs_period_us``
  under the ``cpu`` controller's mount (``cpu``, or ``cpu,cpuacct``).

The lowest quota found along the path wins (a parent's limit binds its
children). Inside a container the cgroup path may name the host's hierarchy,
which is not mounted there; the mount's own root is read as well. Pure
functions over a root directory and the text of ``/proc/self/cgroup``, so the
tests run on sample trees.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Where cgroup v1 mounts the cpu controller (one directory, or one shared with cpuacct).
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max``: ``"150000 100000"`` -> 1.5 CPUs; ``"max 100000"`` -> None (no limit)."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``: ``-1`` is no limit."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _dirs(base: Path, cgroup_path: str) -> list[Path]:
    """``base``/``cgroup_path`` and each ancestor up to ``base`` (only those under ``base``)."""
    rel = [p for p in cgroup_path.strip().split("/") if p and p not in (".", "..")]
    return [base.joinpath(*rel[:n]) for n in range(len(rel), -1, -1)]


def _v2_limits(root: Path, path: str) -> list[float]:
    out = []
    for d in _dirs(root, path):
        text = _read(d / "cpu.max")
        limit = parse_cpu_max(text) if text is not None else None
        if limit is not None:
            out.append(limit)
    return out


def _v1_limits(root: Path, path: str) -> list[float]:
    out = []
    for mount in V1_CPU_MOUNTS:
        for d in _dirs(root / mount, path):
            quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            limit = parse_cfs(quota, period) if quota is not None and period is not None else None
            if limit is not None:
                out.append(limit)
    return out


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_self_cgroup: str | None = None) -> float | None:
    """The CPUs this process's cgroup quota allows (e.g. 1.5), or None when there is no quota.

    ``proc_self_cgroup``: the text of ``/proc/self/cgroup`` (read when None).
    """
    if proc_self_cgroup is None:
        proc_self_cgroup = _read(PROC_SELF_CGROUP) or ""
    limits: list[float] = []
    for line in proc_self_cgroup.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":          # cgroup v2 (the unified hierarchy)
            limits += _v2_limits(root, path)
        elif "cpu" in controllers.split(","):          # cgroup v1, the cpu controller
            limits += _v1_limits(root, path)
    if not proc_self_cgroup.strip():                    # no /proc: try the roots alone
        limits += _v2_limits(root, "/") + _v1_limits(root, "/")
    return min(limits) if limits else None


def available_cpus(affinity: int, limit: float | None) -> int:
    """CPUs to size a pool by: the CPUs we may run on, lowered to the quota rounded up (1.5 -> 2)."""
    if limit is None:
        return affinity
    return max(1, min(affinity, math.ceil(limit - 1e-9)))


def usable_cpus() -> int:
    """The CPUs this process may run on, lowered by its cgroup's CPU quota."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no cgroups either
        return os.cpu_count() or 1
    return available_cpus(affinity, cgroup_cpu_limit())
