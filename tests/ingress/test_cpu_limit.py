"""The ingress sizes its workers by the container's CPU quota (cgroup v2 and v1 sample trees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingress.cpu_limit import available_cpus, cgroup_cpu_limit, parse_cfs, parse_cpu_max


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("100000 100000\n", 1.0), ("150000 100000", 1.5),
                                        ("50000 100000", 0.5), ("", None), ("garbage", None), ("200000", 2.0)])
def test_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize("quota, period, cpus", [("-1\n", "100000\n", None), ("200000", "100000", 2.0),
                                                 ("25000", "100000", 0.25), ("x", "100000", None)])
def test_cfs_quota(quota, period, cpus):
    assert parse_cfs(quota, period) == cpus


def test_v2_container_with_its_own_cgroup_namespace(tmp_path):
    _write(tmp_path, "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == 1.5


def test_v2_the_lowest_quota_along_the_path_wins(tmp_path):
    _write(tmp_path, "cpu.max", "max 100000\n")
    _write(tmp_path, "kubepods.slice/cpu.max", "400000 100000\n")
    _write(tmp_path, "kubepods.slice/pod1/cpu.max", "100000 100000\n")
    _write(tmp_path, "kubepods.slice/pod1/ctr/cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/kubepods.slice/pod1/ctr\n") == 1.0


def test_v2_without_a_quota(tmp_path):
    _write(tmp_path, "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") is None


def test_v1_cpu_controller_mounted_with_cpuacct(tmp_path):
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    _write(tmp_path, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
    _write(tmp_path, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    assert cgroup_cpu_limit(tmp_path, text) == 3.0


def test_v1_host_path_not_mounted_in_the_container_reads_the_mount_root(tmp_path):
    # /proc/self/cgroup names the host's path; the container sees its own cgroup at the mount's root.
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "50000\n")
    _write(tmp_path, "cpu/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, "3:cpu:/kubepods/burstable/pod1/ctr\n2:cpuacct:/x\n") == 0.5


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(tmp_path, "0::/user.slice\n") is None
    assert cgroup_cpu_limit(tmp_path, "") is None


def test_a_path_cannot_climb_out_of_the_root(tmp_path):
    _write(tmp_path, "root/cpu.max", "max 100000\n")
    _write(tmp_path, "cpu.max", "100000 100000\n")  # outside the root given
    assert cgroup_cpu_limit(tmp_path / "root", "0::/../..\n") is None


@pytest.mark.parametrize("affinity, limit, cpus", [(32, None, 32), (32, 1.0, 1), (32, 1.5, 2), (32, 0.25, 1),
                                                   (4, 8.0, 4), (32, 2.0000000001, 2)])
def test_available_cpus_is_the_lower_of_affinity_and_quota(affinity, limit, cpus):
    assert available_cpus(affinity, limit) == cpus


def test_gunicorn_workers_follow_the_quota(monkeypatch):
    import importlib

    import ingress.cpu_limit as cl
    import ingress.gunicorn_conf as conf

    monkeypatch.setattr(cl.os, "sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.setattr(cl, "cgroup_cpu_limit", lambda: 1.0)
    try:
        assert importlib.reload(conf).workers == 2   # a 1-CPU pod on a 32-core node: 2 workers, not 32
        monkeypatch.setattr(cl, "cgroup_cpu_limit", lambda: 3.5)
        assert importlib.reload(conf).workers == 4
        monkeypatch.setattr(cl, "cgroup_cpu_limit", lambda: None)
        assert importlib.reload(conf).workers == 32
    finally:
        monkeypatch.undo()
        importlib.reload(conf)
