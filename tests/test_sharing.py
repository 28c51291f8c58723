"""Unit tests for chapter 06: helpers.sharing workers and helpers.checks.sharing checks."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing import shared_memory
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from helpers import sharing
from helpers.checks import ExerciseFailed
from helpers.checks import sharing as checks


def run_all(procs):
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]


# --- Manager workers ----------------------------------------------------------------------


def test_register_worker_in_processes():
    with multiprocessing.Manager() as manager:
        registry, arrivals = manager.dict(), manager.list()
        procs = [
            multiprocessing.Process(target=sharing.register_worker, args=(registry, arrivals, n))
            for n in ("a", "b")
        ]
        run_all(procs)
        assert registry.copy() == {"a": procs[0].pid, "b": procs[1].pid}
        assert sorted(arrivals) == ["a", "b"]


def test_register_worker_validates_name():
    with pytest.raises(TypeError, match="name"):
        sharing.register_worker({}, [], 3)
    with pytest.raises(ValueError, match="name"):
        sharing.register_worker({}, [], "")


def test_increment_in_process_and_validation():
    counts = {"n": 0}
    sharing.increment(counts, "n", 5)
    sharing.increment(counts, "n", 5, threading.Lock())
    assert counts["n"] == 10
    with pytest.raises(TypeError, match="times"):
        sharing.increment(counts, "n", "5")
    with pytest.raises(ValueError, match="times"):
        sharing.increment(counts, "n", -1)
    with pytest.raises(TypeError, match="start"):
        sharing.increment(counts, "n", 1, None, "go")


def test_increment_with_manager_lock_is_exact():
    with multiprocessing.Manager() as manager:
        counter, lock = manager.dict(n=0), manager.Lock()
        run_all(
            [
                multiprocessing.Process(target=sharing.increment, args=(counter, "n", 50, lock))
                for _ in range(3)
            ]
        )
        assert counter["n"] == 150


def test_increment_lined_up_at_a_barrier_loses_updates_without_a_lock():
    # The chapter's lesson: started together, unlocked read-then-write increments collide.
    with multiprocessing.Manager() as manager:
        counter, start = manager.dict(n=0), manager.Barrier(3)
        run_all(
            [
                multiprocessing.Process(
                    target=sharing.increment, args=(counter, "n", 300, None, start)
                )
                for _ in range(3)
            ]
        )
        assert 0 < counter["n"] < 900


def test_increment_value_and_fill_slice():
    value = multiprocessing.Value("i", 0)
    array = multiprocessing.RawArray("q", 10)
    run_all(
        [
            multiprocessing.Process(target=sharing.increment_value, args=(value, 1000, True)),
            multiprocessing.Process(target=sharing.increment_value, args=(value, 1000, True)),
            multiprocessing.Process(target=sharing.fill_slice, args=(array, 0, 5)),
            multiprocessing.Process(target=sharing.fill_slice, args=(array, 5, 10)),
        ]
    )
    assert value.value == 2000
    assert list(array) == [i * i for i in range(10)]
    with pytest.raises(TypeError, match="use_lock"):
        sharing.increment_value(value, 1, "yes")
    with pytest.raises(ValueError, match="stop"):
        sharing.fill_slice([0] * 3, 2, 1)


# --- Custom manager -------------------------------------------------------------------------


def test_inventory_methods_and_validation():
    inv = sharing.Inventory()
    assert inv.add("pear", 3) == 3
    assert inv.take("pear", 2) == 1
    assert inv.counts() == {"pear": 1}
    assert inv.threads_seen() == 1
    with pytest.raises(ValueError, match="only 1 pear"):
        inv.take("pear", 2)
    with pytest.raises(ValueError, match="item"):
        inv.add("", 1)
    with pytest.raises(ValueError, match="n must be"):
        inv.add("pear", -1)


def test_inventory_manager_serves_atomic_adds():
    with sharing.InventoryManager() as manager:
        inv = manager.Inventory()
        procs = [
            multiprocessing.Process(target=sharing.restock, args=(inv, "fig", 100))
            for _ in range(3)
        ]
        run_all(procs)
        assert inv.counts() == {"fig": 300}
        assert inv.server_pid() not in {p.pid for p in procs} | {
            multiprocessing.current_process().pid
        }
        assert inv.threads_seen() == 3
        with pytest.raises(ValueError):
            inv.take("fig", 1000)  # the server's exception arrives as the same type


# --- Shared memory ------------------------------------------------------------------------


def test_fill_rows_fills_shared_array():
    shape = (6, 4)
    shm = shared_memory.SharedMemory(create=True, size=6 * 4 * 8)
    grid = np.ndarray(shape, dtype=np.float64, buffer=shm.buf)
    try:
        grid[:] = -1
        run_all(
            [
                multiprocessing.Process(target=sharing.fill_rows, args=(shm.name, shape, a, b))
                for a, b in ((0, 3), (3, 6))
            ]
        )
        assert np.array_equal(grid, np.sqrt(np.arange(24.0)).reshape(shape))
        with pytest.raises(ValueError, match="stop"):
            sharing.fill_rows(shm.name, shape, 2, 7)
        with pytest.raises(TypeError, match="shape"):
            sharing.fill_rows(shm.name, [6, 4], 0, 1)
    finally:
        del grid
        shm.close()
        shm.unlink()


@pytest.mark.parametrize("method", sharing.TRANSFER_METHODS)
def test_time_transfers_delivers_every_round(method):
    transfer = sharing.time_transfers(method, 4096, 5)
    assert transfer.method == method and transfer.rounds == 5
    assert transfer.received == sharing.expected_transfers(4096, 5)
    assert transfer.seconds_per_round > 0


def test_time_transfers_validates():
    with pytest.raises(ValueError, match="method"):
        sharing.time_transfers("carrier pigeon", 10, 1)
    with pytest.raises(ValueError, match="nbytes"):
        sharing.time_transfers("pipe", 0, 1)
    with pytest.raises(TypeError, match="rounds"):
        sharing.time_transfers("pipe", 10, 1.5)
    assert sharing.expected_transfers(1, 2) == [(1, 7, 7, 7), (1, 14, 14, 14)]


class RecordingSharedMemory(shared_memory.SharedMemory):
    """SharedMemory that remembers the names of the blocks it created."""

    created: list[str] = []

    def __init__(self, name=None, create=False, size=0):
        super().__init__(name, create, size)
        if create:
            RecordingSharedMemory.created.append(self.name)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm (Linux)")
def test_shared_memory_helpers_leave_nothing_in_dev_shm(monkeypatch, capsys):
    # Record the blocks the helpers create (other programs may use /dev/shm at the same time).
    RecordingSharedMemory.created = []
    monkeypatch.setattr(shared_memory, "SharedMemory", RecordingSharedMemory)
    sharing.time_transfers("shared memory", 1024, 3)
    checks.check_histogram(histogram_right)
    with pytest.raises(ExerciseFailed):
        checks.check_histogram(histogram_unlinks)
    assert len(RecordingSharedMemory.created) == 3
    left = [name for name in RecordingSharedMemory.created if Path("/dev/shm", name).exists()]
    assert left == []


# --- Exercise checks --------------------------------------------------------------------------


def scores_right(board, lock, player, scores):
    with lock:
        current = board[player]
        current.extend(scores)
        board[player] = current


def scores_without_lock(board, lock, player, scores):
    current = board[player]
    current.extend(scores)
    board[player] = current


def scores_lock_twice(board, lock, player, scores):
    with lock:
        current = board[player]
    current.extend(scores)
    with lock:  # held for the write, but released since the read
        board[player] = current


def scores_on_copy(board, lock, player, scores):
    with lock:
        board[player].extend(scores)


def scores_replace(board, lock, player, scores):
    with lock:
        board[player] = scores


def scores_raise(board, lock, player, scores):
    raise KeyError(player)


def scores_skeleton(board, lock, player, scores):
    return None


def test_check_record_scores_passes_right_answer(capsys):
    checks.check_record_scores(scores_right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "func, hint",
    [
        (scores_on_copy, "copy"),
        (scores_skeleton, "left the board as it was"),
        (scores_replace, "old scores"),
        (scores_raise, "raised KeyError"),
        (scores_without_lock, "without holding the lock"),
        (scores_lock_twice, "without holding the lock"),
        (None, "define the function"),
    ],
)
def test_check_record_scores_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_record_scores(func)


def test_unlocked_updates_pairs_each_write_with_the_read_before_it():
    locked = [("get", "a", 1, 3), ("set", "a", 1, 3)]
    assert checks._unlocked_updates(locked) == []
    assert checks._unlocked_updates([("get", "a", 1, 0), ("set", "a", 1, 0)]) == ["a"]
    assert checks._unlocked_updates([("get", "a", 1, 3), ("set", "a", 1, 4)]) == ["a"]


def histogram_right(name, shape, row, values):
    from multiprocessing import shared_memory

    import numpy as np

    shm = shared_memory.SharedMemory(name=name)
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[row] = np.bincount(values, minlength=shape[1])
        del counts
    finally:
        shm.close()


def histogram_skeleton(name, shape, row, values):
    return None


def histogram_local(name, shape, row, values):
    import numpy as np

    counts = np.zeros(shape, dtype=np.int64)
    counts[row] = np.bincount(values, minlength=shape[1])


def histogram_row_zero(name, shape, row, values):
    from multiprocessing import shared_memory

    import numpy as np

    shm = shared_memory.SharedMemory(name=name)
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[0] = np.bincount(values, minlength=shape[1])
        del counts
    finally:
        shm.close()


def histogram_unlinks(name, shape, row, values):
    from multiprocessing import shared_memory

    import numpy as np

    shm = shared_memory.SharedMemory(name=name)
    counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    counts[row] = np.bincount(values, minlength=shape[1])
    del counts
    shm.close()
    shm.unlink()


BINS = 8


def histogram_uses_a_variable(name, shape, row, values):
    shm = SharedMemory(name=name)  # a class imported from a module: the worker has it
    counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    counts[row] = np.bincount(values, minlength=BINS)  # a variable: the worker hasn't
    del counts
    shm.close()


def histogram_no_close(name, shape, row, values):
    shm = SharedMemory(name=name)
    counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    counts[row] = np.bincount(values, minlength=shape[1])


def histogram_close_with_view(name, shape, row, values):
    shm = SharedMemory(name=name)
    counts = np.frombuffer(shm.buf, dtype=np.int64).reshape(shape)
    counts[row] = np.bincount(values, minlength=shape[1])
    shm.close()  # BufferError: the view still holds the buffer


def test_check_histogram_passes_right_answer(capsys):
    checks.check_histogram(histogram_right)
    assert "Correct:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "func, hint",
    [
        (histogram_skeleton, "all zeros"),
        (histogram_local, "all zeros"),
        (histogram_row_zero, r"row \d should hold"),
        (histogram_unlinks, "unlink"),
        (histogram_uses_a_variable, "no variables"),
        (histogram_no_close, "never called close"),
        (histogram_close_with_view, "BufferError"),
        (lambda *args: None, "lambda"),
    ],
)
def test_check_histogram_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_histogram(func)


def test_check_histogram_leaves_no_child_processes():
    checks.check_histogram(histogram_right)
    assert multiprocessing.active_children() == []


# --- A Value reaches pool workers through the initializer -----------------------------------


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_counter_through_the_pool_initializer(method):
    ctx = multiprocessing.get_context(method)
    counter = ctx.Value("i", 0)
    with ctx.Pool(2, initializer=sharing.use_counter, initargs=(counter,)) as pool:
        pids = pool.map(sharing.add_to_counter, [1] * 50)
    assert counter.value == 50 and len(pids) == 50


def test_value_as_a_pool_task_argument_raises_in_the_caller():
    counter = multiprocessing.Value("i", 7)
    assert sharing.read_value(counter) == 7
    with multiprocessing.Pool(1) as pool:
        with pytest.raises(RuntimeError, match="inheritance"):
            pool.apply(sharing.read_value, (counter,))


def test_counter_helpers_validate(monkeypatch):
    with pytest.raises(TypeError, match="counter"):
        sharing.use_counter(3)
    monkeypatch.setattr(sharing, "_counter", None)
    with pytest.raises(RuntimeError, match="initializer"):
        sharing.add_to_counter(1)
    with pytest.raises(TypeError, match="n must be"):
        sharing.add_to_counter("1")


def test_plot_transfer_costs_draws_every_bar_and_validates():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_round = {
        (m, s): 0.001 * (i + 1)
        for i, m in enumerate(sharing.TRANSFER_METHODS)
        for s in ("1 KiB", "1 MiB")
    }
    fig = sharing.plot_transfer_costs(per_round)
    assert len(fig.axes[0].patches) == 2 * len(sharing.TRANSFER_METHODS)
    plt.close(fig)
    with pytest.raises(TypeError, match="per_round"):
        sharing.plot_transfer_costs({})
    del per_round["pipe", "1 MiB"]
    with pytest.raises(ValueError, match="pipe"):
        sharing.plot_transfer_costs(per_round)
