"""helpers.work: the shared jobs are deterministic and validate their input."""

import os
import subprocess
import sys

import pytest

from helpers import work


def test_busy_sum_is_deterministic():
    assert work.busy_sum(0) == 0
    assert work.busy_sum(10) == sum(i * i % 7 for i in range(10))


@pytest.mark.parametrize(("arg", "error"), [("3", TypeError), (2.5, TypeError), (-1, ValueError)])
def test_busy_sum_rejects_bad_n(arg, error):
    with pytest.raises(error, match="n must"):
        work.busy_sum(arg)


def test_calibrate_gives_a_count_that_takes_about_that_long():
    import time

    n = work.calibrate(0.1)
    start = time.perf_counter()
    work.busy_sum(n)
    took = time.perf_counter() - start
    assert 0.02 < took < 0.5  # noisy machines: the order of magnitude is what matters
    with pytest.raises(ValueError, match="seconds"):
        work.calibrate(0)


def test_fake_download_returns_its_span():
    s = work.fake_download("https://example.org/page", 0.02)
    assert s.label == "page" and s.duration >= 0.02
    with pytest.raises(TypeError, match="url"):
        work.fake_download(b"x")
    with pytest.raises(ValueError, match="seconds"):
        work.fake_download("u", -1)


# --- usable_cpus: affinity, container CPU quota (cgroups), PYTHON_CPU_COUNT ------------------


def fake_cgroups(tmp_path, proc_lines, files):
    """Write a fake /proc/self/cgroup and cgroup tree; return usable_cpus' keyword arguments."""
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("".join(line + "\n" for line in proc_lines))
    root = tmp_path / "sys_fs_cgroup"
    root.mkdir()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return {"proc_cgroup": proc, "cgroup_root": root}


@pytest.fixture
def many_cpus(monkeypatch):
    """Pretend this process may run on 8 CPUs, with no PYTHON_CPU_COUNT override."""
    monkeypatch.setattr(os, "process_cpu_count", lambda: 8, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(work, "_cpu_count_override", lambda: None)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", 8), ("150000 100000", 1), ("200000 100000", 2), ("50000 100000", 1)],
)
def test_cgroup_v2_quota_is_rounded_down_and_at_least_1(tmp_path, many_cpus, cpu_max, expected):
    paths = fake_cgroups(tmp_path, ["0::/"], {"cpu.max": cpu_max})
    assert work.usable_cpus(**paths) == expected


def test_cgroup_v2_reads_the_process_own_cgroup_and_its_parents(tmp_path, many_cpus):
    files = {"user.slice/cpu.max": "300000 100000", "user.slice/job/cpu.max": "max 100000"}
    paths = fake_cgroups(tmp_path, ["0::/user.slice/job"], files)
    assert work.cgroup_cpu_limit(**paths) == 3.0  # the parent's limit applies to the child
    assert work.usable_cpus(**paths) == 3


@pytest.mark.parametrize(
    ("quota", "expected_limit", "expected"),
    [("-1", None, 8), ("250000", 2.5, 2), ("100000", 1.0, 1), ("20000", 0.2, 1)],
)
def test_cgroup_v1_quota(tmp_path, many_cpus, quota, expected_limit, expected):
    files = {"cpu,cpuacct/cpu.cfs_quota_us": quota, "cpu,cpuacct/cpu.cfs_period_us": "100000"}
    lines = ["12:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc", "0::/"]  # hybrid v1 + v2
    paths = fake_cgroups(tmp_path, lines, files)
    assert work.cgroup_cpu_limit(**paths) == expected_limit
    assert work.usable_cpus(**paths) == expected


def test_no_cgroup_files_means_no_limit(tmp_path, many_cpus):
    paths = {"proc_cgroup": tmp_path / "missing", "cgroup_root": tmp_path / "missing-too"}
    assert work.cgroup_cpu_limit(**paths) is None
    assert work.usable_cpus(**paths) == 8
    broken = fake_cgroups(tmp_path, ["garbage", "0::/"], {"cpu.max": "lots 0"})
    assert work.usable_cpus(**broken) == 8


def test_quota_never_raises_the_count_above_the_affinity_mask(tmp_path, many_cpus):
    paths = fake_cgroups(tmp_path, ["0::/"], {"cpu.max": "1600000 100000"})  # 16 CPUs
    assert work.usable_cpus(**paths) == 8


def test_python_cpu_count_override_wins_over_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(work, "_cpu_count_override", lambda: 3)
    monkeypatch.setattr(os, "process_cpu_count", lambda: 3, raising=False)
    paths = fake_cgroups(tmp_path, ["0::/"], {"cpu.max": "100000 100000"})
    assert work.usable_cpus(**paths) == 3


@pytest.mark.parametrize(
    ("version", "env", "expected"),
    [
        ((3, 13), "3", 3),
        ((3, 13), "default", None),
        ((3, 13), "process", None),
        ((3, 13), "0", None),
        ((3, 12), "3", None),  # before 3.13 Python ignores the variable
    ],
)
def test_cpu_count_override_reads_python_cpu_count(monkeypatch, version, env, expected):
    monkeypatch.setattr(sys, "version_info", version)
    monkeypatch.setattr(sys, "_xoptions", {})
    monkeypatch.setenv("PYTHON_CPU_COUNT", env)
    assert work._cpu_count_override() == expected


@pytest.mark.skipif(sys.version_info < (3, 13), reason="PYTHON_CPU_COUNT is new in 3.13")
def test_python_cpu_count_in_a_real_interpreter():
    code = "import os, helpers.work as w; print(w.usable_cpus(), os.process_cpu_count())"
    env = {**os.environ, "PYTHON_CPU_COUNT": "5"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out == ["5", "5"]
