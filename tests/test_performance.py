"""helpers.performance: measuring tools, workers and the CPU-count parsers of chapter 09."""

import multiprocessing
import queue
import sys

import pytest

from helpers import performance, work


def test_compare_times_every_callable_every_round():
    calls = []
    result = performance.compare(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 4
    )
    assert sorted(calls) == ["a"] * 4 + ["b"] * 4
    assert calls[:2] == ["a", "b"] and calls[2:4] == ["b", "a"]  # rounds take turns starting
    assert result.rounds == 4 and set(result.times) == {"a", "b"}


def test_comparison_best_and_median_ratio():
    c = performance.Comparison({"slow": [2.0, 9.0, 4.2], "fast": [1.0, 3.0, 2.0]})
    assert c.best("slow") == 2.0
    assert c.ratio("slow", "fast") == pytest.approx(2.1)  # median of 2.0, 3.0, 2.1
    with pytest.raises(ValueError, match="label"):
        c.best("other")


def test_compare_and_comparison_validate():
    with pytest.raises(ValueError, match="funcs"):
        performance.compare({})
    with pytest.raises(TypeError, match="funcs"):
        performance.compare({"x": 3})
    with pytest.raises(ValueError, match="repeat"):
        performance.compare({"x": print}, repeat=0)
    with pytest.raises(ValueError, match="same number"):
        performance.Comparison({"a": [1.0], "b": [1.0, 2.0]})


def test_amdahl_speedup():
    assert performance.amdahl_speedup(0.0, 4) == 4
    assert performance.amdahl_speedup(1.0, 8) == 1
    assert performance.amdahl_speedup(0.2, 8) == pytest.approx(1 / (0.2 + 0.1))
    with pytest.raises(ValueError, match="serial_fraction"):
        performance.amdahl_speedup(1.5, 2)
    with pytest.raises(TypeError, match="serial_fraction"):
        performance.amdahl_speedup("0.1", 2)


def test_lane_and_nap():
    assert performance.lane("cpu", 3, 100) == 3
    assert performance.lane("wait", 2, 0.0) == 2
    assert performance.nap(0) == 0
    with pytest.raises(ValueError, match="kind"):
        performance.lane("io", 1, 1)
    with pytest.raises(ValueError, match="count"):
        performance.lane("cpu", -1, 1)


def test_start_join_seconds_measures_a_child():
    seconds = performance.start_join_seconds("spawn", performance.noop, repeat=1)
    assert 0 < seconds < 30
    with pytest.raises(ValueError, match="method"):
        performance.start_join_seconds("thread")
    with pytest.raises(TypeError, match="target"):
        performance.start_join_seconds("spawn", target=None)


def test_one_blas_thread_limits_a_spawned_worker():
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=performance.one_blas_thread) as ex:
        assert ex.submit(performance.blas_threads).result(timeout=60) == 1


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000", None),
        ("max", None),
        ("150000 100000", 1.5),
        ("200000 100000\n", 2.0),
        ("50000", 0.5),
    ],
)
def test_parse_cpu_max(text, cpus):
    assert work.parse_cpu_max(text) == cpus


@pytest.mark.parametrize("text", ["", "a b", "100 0", "1 2 3", "-5 100000"])
def test_parse_cpu_max_rejects_malformed_lines(text):
    with pytest.raises(ValueError, match="text|quota"):
        work.parse_cpu_max(text)


def test_parse_cfs_quota():
    assert work.parse_cfs_quota("-1", "100000") is None
    assert work.parse_cfs_quota("250000", "100000") == 2.5
    with pytest.raises(ValueError):
        work.parse_cfs_quota("x", "100000")
    with pytest.raises(ValueError):
        work.parse_cfs_quota("0", "100000")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="copy-on-write demo: Linux")
def test_private_memory_after_reading_a_list_under_fork():
    fork = multiprocessing.get_context("fork")
    numbers = list(range(1_000_000, 1_300_000))
    grown = {}
    for action in ("nothing", "read"):
        results = fork.SimpleQueue()
        p = fork.Process(target=performance.private_memory_after, args=(numbers, action, results))
        p.start()
        grown[action] = results.get()
        p.join(timeout=30)
    assert grown["read"] > 4 * 2**20 > grown["nothing"]
    with pytest.raises(ValueError, match="action"):
        performance.private_memory_after([], "write", queue.SimpleQueue())


@pytest.mark.parametrize("method", performance.TRANSFER_METHODS)
def test_transfer_seconds_hands_every_size_over(method):
    seconds = performance.transfer_seconds(method, [1, 1000, 70_000], rounds=1)
    assert sorted(seconds) == [1, 1000, 70_000]
    assert all(0 < s < 10 for s in seconds.values())


def test_transfer_seconds_validates():
    with pytest.raises(ValueError, match="method"):
        performance.transfer_seconds("manager", [10])
    with pytest.raises(ValueError, match="sizes"):
        performance.transfer_seconds("pipe", [0])
    with pytest.raises(ValueError, match="sizes"):
        performance.transfer_seconds("pipe", [])


def test_numpy_loaded_in_a_spawned_child_only_after_importing_it():
    from concurrent.futures import ProcessPoolExecutor

    import numpy  # noqa: F401

    assert performance.numpy_loaded()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        assert ex.submit(performance.numpy_loaded).result(timeout=60) is False


def test_checksum_reads_every_byte():
    import numpy as np

    data = np.arange(64, dtype=np.uint8)
    assert performance.checksum(data) == performance.checksum(bytes(data))
    changed = data.copy()
    changed[-1] += 1
    assert performance.checksum(changed) != performance.checksum(data)
    assert performance.checksum(np.ones(7, dtype=np.uint8)) == 7  # not a multiple of 8
    with pytest.raises(TypeError, match="data"):
        performance.checksum(np.ones(8, dtype=np.int64))


def test_busy_elsewhere_does_not_count_this_process():
    with performance.busy_elsewhere() as load:
        work.busy_sum(work.calibrate(0.1))
    assert load.seconds > 0 and load.cpus >= 0
    assert "Load(" in repr(load)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reaped children's time: Linux")
def test_busy_elsewhere_counts_children_that_ended_as_ours(monkeypatch):
    import types

    import psutil

    me = psutil.Process()

    def only_us():  # a machine where nothing but this process and its children runs
        t = me.cpu_times()
        return types.SimpleNamespace(
            user=t.user + t.children_user, system=t.system + t.children_system
        )

    monkeypatch.setattr(psutil, "cpu_times", only_us)
    ctx = multiprocessing.get_context("fork")
    n = work.calibrate(0.2)
    with performance.busy_elsewhere() as load:
        for _ in range(2):  # children that use the CPU, then end and are reaped
            child = ctx.Process(target=work.busy_sum, args=(n,))
            child.start()
            child.join()
    assert load.cpus < 0.1, load  # their time is ours, not other programs'


def test_profiled_busy_sum_writes_one_profile_per_task(tmp_path):
    import pstats

    assert performance.profiled_busy_sum(1000, str(tmp_path)) == work.busy_sum(1000)
    performance.profiled_busy_sum(1000, str(tmp_path))
    files = sorted(str(f) for f in tmp_path.glob("*.prof"))
    assert len(files) == 2
    calls = {f[2]: c[1] for f, c in pstats.Stats(*files).stats.items()}
    assert calls["busy_sum"] == 2
    with pytest.raises(ValueError, match="folder"):
        performance.profiled_busy_sum(10, str(tmp_path / "missing"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is Linux-only")
def test_memory_counts_reports_rss_uss_pss():
    import threading

    import numpy as np

    counts = performance.memory_counts(np.ones(1000), threading.Barrier(1))
    assert set(counts) == {"rss", "uss", "pss"}
    assert 0 < counts["uss"] <= counts["pss"] <= counts["rss"]
