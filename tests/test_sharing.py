"""Unit tests for chapter 06: helpers.sharing workers and helpers.checks.sharing checks."""

from __future__ import annotations

import multiprocessing
import os
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


def test_time_transfers_by_size_times_each_size_with_one_worker():
    by_size = sharing.time_transfers_by_size("shared memory", (4096, 1, 100), 3)
    assert sorted(by_size) == [1, 100, 4096]
    for nbytes, transfer in by_size.items():
        assert transfer.received == sharing.expected_transfers(nbytes, 3)
    with pytest.raises(TypeError, match="sizes"):
        sharing.time_transfers_by_size("pipe", 1024, 3)
    with pytest.raises(ValueError, match="sizes"):
        sharing.time_transfers_by_size("pipe", (), 3)


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
    assert len(RecordingSharedMemory.created) >= 3
    left = [name for name in RecordingSharedMemory.created if Path("/dev/shm", name).exists()]
    assert left == []


# --- Exercise checks --------------------------------------------------------------------------


def claim_right(todo, owners, lock, worker):
    with lock:
        if len(todo) == 0:
            return None
        job = todo.pop(0)
        owners[job] = worker
    return job


def claim_pop_no_lock(todo, owners, lock, worker):
    try:
        job = todo.pop()  # one call in the server: atomic without the lock
    except IndexError:
        return None
    owners[job] = worker
    return job


def claim_check_then_act(todo, owners, lock, worker):
    if len(todo) == 0:
        return None
    job = todo.pop(0)
    owners[job] = worker
    return job


def claim_lock_only_the_check(todo, owners, lock, worker):
    with lock:
        empty = len(todo) == 0
    if empty:
        return None
    job = todo.pop(0)
    owners[job] = worker
    return job


def claim_peek_then_delete(todo, owners, lock, worker):
    try:
        job = todo[0]
        with lock:
            del todo[0]
    except IndexError:
        return None
    owners[job] = worker
    return job


def claim_looks_again(todo, owners, lock, worker):
    with lock:
        if len(todo) == 0:
            return None
    with lock:  # looks again under this acquisition before taking: still right
        if len(todo) == 0:
            return None
        job = todo.pop(0)
    owners[job] = worker
    return job


def claim_split_lock(todo, owners, lock, worker):
    with lock:
        if len(todo) == 0:
            return None
    with lock:  # takes without looking again: another worker may have taken the last one
        job = todo.pop(0)
    owners[job] = worker
    return job


def claim_no_owner(todo, owners, lock, worker):
    with lock:
        return todo.pop(0) if len(todo) else None


def claim_keeps_the_lock(todo, owners, lock, worker):
    lock.acquire()
    if len(todo) == 0:
        return None  # returns holding the lock
    job = todo.pop(0)
    owners[job] = worker
    lock.release()
    return job


def claim_never_removes(todo, owners, lock, worker):
    with lock:
        for job in todo[:]:
            if job not in owners:
                owners[job] = worker
                return job
    return None


def claim_skeleton(todo, owners, lock, worker):
    return None


def test_check_claim_passes_right_answers(capsys):
    checks.check_claim(claim_right)
    checks.check_claim(claim_pop_no_lock)
    checks.check_claim(claim_looks_again)
    assert capsys.readouterr().out.count("Correct:") == 3
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "func, hint",
    [
        (claim_skeleton, "returned None although jobs were left"),
        (claim_check_then_act, "raised IndexError"),
        (claim_lock_only_the_check, "raised IndexError"),
        (claim_peek_then_delete, "more than one call"),
        (claim_split_lock, "let the lock go|raised IndexError"),
        (claim_no_owner, "owners should map"),
        (claim_keeps_the_lock, "did not finish|lock (was )?still held"),
        (claim_never_removes, "todo still (holds|held)"),
        (None, "define the function"),
    ],
)
def test_check_claim_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_claim(func)


def histogram_right(name, shape, row, values):
    from multiprocessing import shared_memory

    import numpy as np

    bad = [value for value in values if not 0 <= value < shape[1]]
    shm = shared_memory.SharedMemory(name=name)
    try:
        if bad:
            raise ValueError(f"value {bad[0]} is not a bin")
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[row] = np.bincount(np.asarray(values, dtype=np.int64), minlength=shape[1])
        del counts
    finally:
        shm.close()


def histogram_validates_before_attaching(name, shape, row, values):
    for value in values:
        if value < 0 or value >= shape[1]:
            raise ValueError(f"{value} is out of range")
    shm = SharedMemory(name=name)
    view = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    for value in values:
        view[row, value] += 1
    del view
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

    if any(not 0 <= value < shape[1] for value in values):
        raise ValueError(f"bad value in {values}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[0] += np.bincount(values, minlength=shape[1])
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


def histogram_no_validation(name, shape, row, values):
    shm = SharedMemory(name=name)
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[row] = np.bincount(values, minlength=shape[1])  # numpy's own errors
        del counts
    finally:
        shm.close()


def histogram_writes_then_raises(name, shape, row, values):
    shm = SharedMemory(name=name)
    try:
        view = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        try:
            for value in values:
                if not 0 <= value < shape[1]:
                    raise ValueError(f"value {value} is not a bin")
                view[row, value] += 1
        finally:
            del view
    finally:
        shm.close()


def histogram_no_finally(name, shape, row, values):
    shm = SharedMemory(name=name)
    if any(not 0 <= value < shape[1] for value in values):
        raise ValueError(f"values {[v for v in values if not 0 <= v < shape[1]]} are not bins")
    counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    counts[row] = np.bincount(values, minlength=shape[1])
    del counts
    shm.close()


def test_check_histogram_passes_right_answers(capsys):
    checks.check_histogram(histogram_right)
    checks.check_histogram(histogram_validates_before_attaching)
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize(
    "func, hint",
    [
        (histogram_skeleton, "all zeros"),
        (histogram_local, "all zeros"),
        (histogram_row_zero, r"row \d should hold|say which value"),
        (histogram_unlinks, "unlink"),
        (histogram_uses_a_variable, "no variables"),
        (histogram_no_close, "closed 0"),
        (histogram_close_with_view, "BufferError"),
        (histogram_no_validation, "which value"),
        (histogram_writes_then_raises, "check every value before"),
        (histogram_no_finally, "closed 0"),
        (lambda *args: None, "lambda"),
    ],
)
def test_check_histogram_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_histogram(func)


def test_check_histogram_leaves_no_child_processes():
    checks.check_histogram(histogram_right)
    assert multiprocessing.active_children() == []


# --- Namespace, a RawArray through a pool initializer, a remote manager ------------------------


def test_tune_halves_the_threshold_in_a_managed_namespace():
    with multiprocessing.Manager() as manager:
        settings = manager.Namespace(threshold=0.5)
        proc = multiprocessing.Process(target=sharing.tune, args=(settings,))
        run_all([proc])
        assert (settings.threshold, settings.tuned_by) == (0.25, proc.pid)
        with pytest.raises(TypeError, match="settings"):
            sharing.tune(manager.Namespace())


def test_use_array_and_double_row_in_a_pool():
    raw = multiprocessing.RawArray("d", 6)
    table = np.frombuffer(raw, dtype=np.float64).reshape(3, 2)
    table[:] = np.arange(6).reshape(3, 2)
    with multiprocessing.Pool(2, initializer=sharing.use_array, initargs=(raw, (3, 2))) as pool:
        pids = pool.map(sharing.double_row, range(3))
    assert np.array_equal(table, 2 * np.arange(6).reshape(3, 2))
    assert os.getpid() not in pids
    with pytest.raises(TypeError, match="shape"):
        sharing.use_array(raw, [3, 2])


def test_double_row_needs_the_initializer(monkeypatch):
    monkeypatch.setattr(sharing, "_array", None)
    with pytest.raises(RuntimeError, match="initializer"):
        sharing.double_row(0)


def test_serve_inventory_serves_one_object_to_every_client():
    key = b"secret"
    listening, ready = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=sharing.serve_inventory, args=("127.0.0.1", key, ready), daemon=True
    )
    server.start()
    ready.close()
    try:
        assert listening.poll(30)
        address = listening.recv()
        assert address[0] == "127.0.0.1"
        assert sharing.remote_restock(address, key, "pear", 3) == server.pid
        assert sharing.remote_restock(address, key, "pear", 2) == server.pid
        client = sharing.InventoryServer(address=address, authkey=key)
        client.connect()
        assert client.inventory().counts() == {"pear": 5}
        with pytest.raises(multiprocessing.AuthenticationError):
            sharing.InventoryServer(address=address, authkey=b"wrong").connect()
    finally:
        server.kill()
        server.join(30)
        listening.close()


def test_serve_inventory_validates():
    with pytest.raises(TypeError, match="authkey"):
        sharing.serve_inventory("127.0.0.1", "text", None)
    with pytest.raises(TypeError, match="host"):
        sharing.serve_inventory(None, b"k", None)


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
