"""Red team for chapter 06's exercises: answers meant to fool the checks, and odd right ones.

Every case runs the check exactly as the notebook's check cell calls it. A wrong answer must
get ``ExerciseFailed``; a right one must pass. The answers are module-level functions, as a
learner's notebook functions are; the checks run them in spawned processes. The module imports
``np`` and ``shared_memory`` as the notebook does, since the exercise text says the workers know
them.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
from multiprocessing import shared_memory

import numpy as np
import pytest

from helpers.checks import ExerciseFailed
from helpers.checks import sharing as check

# ---------------------------------------------------------------- Exercise 1: claim


def c_skeleton(todo, owners, lock, worker):
    return None


def c_no_lock_check_then_pop(todo, owners, lock, worker):
    if len(todo) == 0:
        return None
    job = todo.pop()
    owners[job] = worker
    return job


def c_no_lock_peek_remove(todo, owners, lock, worker):
    if not todo:
        return None
    job = todo[0]
    todo.remove(job)
    owners[job] = worker
    return job


def c_peek_swallow_errors(todo, owners, lock, worker):
    try:
        job = todo[0]
        todo.remove(job)
    except Exception:
        return None
    owners[job] = worker
    return job


def c_split_lock(todo, owners, lock, worker):
    with lock:
        empty = len(todo) == 0
    if empty:
        return None
    with lock:
        job = todo.pop()
    owners[job] = worker
    return job


def c_split_peek_then_remove(todo, owners, lock, worker):
    with lock:
        if not todo:
            return None
        job = todo[-1]
    with lock:
        with contextlib.suppress(ValueError):
            todo.remove(job)
        owners[job] = worker
    return job


def c_leaks_lock_when_empty(todo, owners, lock, worker):
    lock.acquire()
    if len(todo) == 0:
        return None  # the lock is never released: the other workers wait forever
    job = todo.pop()
    owners[job] = worker
    lock.release()
    return job


def c_never_removes(todo, owners, lock, worker):
    with lock:
        for job in todo:
            if job not in owners:
                owners[job] = worker
                return job
        return None


def c_no_owner_recorded(todo, owners, lock, worker):
    with lock:
        if not todo:
            return None
        return todo.pop()


def c_owner_wrong_way_round(todo, owners, lock, worker):
    with lock:
        if not todo:
            return None
        job = todo.pop()
        owners[worker] = job
        return job


def c_local_lock(todo, owners, lock, worker):
    with multiprocessing.Lock():  # a new lock in every call protects nothing
        if len(todo) == 0:
            return None
        job = todo.pop()
        owners[job] = worker
        return job


def c_grabs_everything(todo, owners, lock, worker):
    with lock:
        if not todo:
            return None
        jobs = list(todo)
        del todo[:]
        for job in jobs:
            owners[job] = worker
        return jobs[0]


def c_owners_check_then_act(todo, owners, lock, worker):
    for job in list(todo):
        if job not in owners:
            owners[job] = worker
            with contextlib.suppress(ValueError):
                todo.remove(job)
            return job
    return None


def c_atomic_pop_no_lock(todo, owners, lock, worker):
    try:
        job = todo.pop()  # one call: the server does it at once
    except IndexError:
        return None
    owners.update({job: worker})
    return job


def c_acquire_finally_front(todo, owners, lock, worker):
    lock.acquire()
    try:
        if len(todo) > 0:
            job = todo.pop(0)
            owners[job] = worker
            return job
        return None
    finally:
        lock.release()


def c_copy_under_lock(todo, owners, lock, worker):
    with lock:
        jobs = todo[:]
        if not jobs:
            return None
        job = jobs[len(jobs) // 2]
        todo.remove(job)
        owners.setdefault(job, worker)
    return job


CLAIM_WRONG = [
    pytest.param(c_skeleton, id="skeleton"),
    pytest.param(c_no_lock_check_then_pop, id="no-lock-check-then-pop"),
    pytest.param(c_no_lock_peek_remove, id="no-lock-peek-remove"),
    pytest.param(c_peek_swallow_errors, id="peek-swallow-errors"),
    pytest.param(c_split_lock, id="split-critical-section"),
    pytest.param(c_split_peek_then_remove, id="split-peek-then-remove"),
    pytest.param(c_leaks_lock_when_empty, id="lock-never-released-when-empty"),
    pytest.param(c_never_removes, id="never-removes-from-todo"),
    pytest.param(c_no_owner_recorded, id="owner-not-recorded"),
    pytest.param(c_owner_wrong_way_round, id="owners-worker-to-job"),
    pytest.param(c_local_lock, id="new-lock-per-call"),
    pytest.param(c_grabs_everything, id="grabs-all-jobs"),
    pytest.param(c_owners_check_then_act, id="owners-check-then-act"),
]
CLAIM_RIGHT = [
    pytest.param(c_atomic_pop_no_lock, id="atomic-pop-no-lock"),
    pytest.param(c_acquire_finally_front, id="acquire-finally-pop-front"),
    pytest.param(c_copy_under_lock, id="copy-under-lock-setdefault"),
]


@pytest.mark.parametrize("answer", CLAIM_WRONG)
def test_claim_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check.check_claim(answer)


@pytest.mark.parametrize("answer", CLAIM_RIGHT)
def test_claim_accepts(answer):
    check.check_claim(answer)


# ---------------------------------------------------------------- Exercise 2: histogram


def h_skeleton(name, shape, row, values):
    return None


def h_never_closes(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    bad = [v for v in values if not 0 <= v < shape[1]]
    if bad:
        raise ValueError(f"not a bin: {bad[0]}")
    grid[row] = np.bincount(values, minlength=shape[1])


def h_leaks_on_error(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    bad = [v for v in values if not 0 <= v < shape[1]]
    if bad:
        raise ValueError(f"not a bin: {bad[0]}")  # returns without close()
    grid[row] = np.bincount(values, minlength=shape[1])
    del grid
    shm.close()


def h_writes_then_raises(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        good = [v for v in values if 0 <= v < shape[1]]
        grid[row] = np.bincount(np.asarray(good, dtype=np.int64), minlength=shape[1])
        del grid
        bad = [v for v in values if not 0 <= v < shape[1]]
        if bad:
            raise ValueError(f"not a bin: {bad[0]}")
    finally:
        shm.close()


def h_unlinks(name, shape, row, values):
    bad = [v for v in values if not 0 <= v < shape[1]]
    if bad:
        raise ValueError(f"not a bin: {bad[0]}")
    shm = shared_memory.SharedMemory(name=name)
    grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
    grid[row] = np.bincount(values, minlength=shape[1])
    del grid
    shm.close()
    shm.unlink()  # the worker isn't the one to unlink


def h_clips(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        clean = np.clip(np.asarray(values, dtype=np.int64), 0, shape[1] - 1)
        grid[row] = np.bincount(clean, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_drops_bad(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        good = np.asarray([v for v in values if 0 <= v < shape[1]], dtype=np.int64)
        grid[row] = np.bincount(good, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_lets_numpy_complain(name, shape, row, values):
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        # bincount rejects negatives and the assignment a too-long result: both ValueError
        grid[row] = np.bincount(np.asarray(values, dtype=np.int64), minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_message_without_value(name, shape, row, values):
    if [v for v in values if not 0 <= v < shape[1]]:
        raise ValueError("dirty data")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_upper_bound_only(name, shape, row, values):
    big = [v for v in values if v >= shape[1]]
    if big:
        raise ValueError(f"not a bin: {big[0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=shape[1])  # negatives: numpy's own message
        del grid
    finally:
        shm.close()


def h_hardcoded_bins(name, shape, row, values):
    if [v for v in values if not 0 <= v < 10]:
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < 10][0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray((4, 10), dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=10)
        del grid
    finally:
        shm.close()


def h_hardcoded_5x8(name, shape, row, values):
    bad = [v for v in values if not 0 <= v < 8]
    if bad:
        raise ValueError(f"not a bin: {bad[0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray((5, 8), dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=8)
        del grid
    finally:
        shm.close()


def h_hardcoded_8_bins(name, shape, row, values):
    bad = [v for v in values if not 0 <= v < 8]  # the number of bins of the example, not shape[1]
    if bad:
        raise ValueError(f"not a bin: {bad[0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=8)[: shape[1]]
        del grid
    finally:
        shm.close()


def h_message_in_parentheses_period(name, shape, row, values):
    for v in values:
        if v < 0 or v >= shape[1]:
            raise ValueError(f"Found a value outside the bins ({v}). Expected 0 <= v < {shape[1]}.")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_always_row_zero(name, shape, row, values):
    if [v for v in values if not 0 <= v < shape[1]]:
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < shape[1]][0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[0] += np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_zeroes_whole_block(name, shape, row, values):
    if [v for v in values if not 0 <= v < shape[1]]:
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < shape[1]][0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[:] = 0  # "start clean" wipes rows other workers already wrote
        grid[row] = np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_crashes_on_empty(name, shape, row, values):
    if min(values) < 0 or max(values) >= shape[1]:  # min() of an empty chunk raises
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < shape[1]][0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        grid[row] = np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_close_error_swallowed(name, shape, row, values):
    if [v for v in values if not 0 <= v < shape[1]]:
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < shape[1]][0]}")
    shm = shared_memory.SharedMemory(name=name)
    grid = np.frombuffer(shm.buf, dtype=np.int64).reshape(shape)  # holds the buffer
    grid[row] = np.bincount(values, minlength=shape[1])
    with contextlib.suppress(BufferError):
        shm.close()  # the view is still alive: BufferError, swallowed, handle stays open


def h_float_view(name, shape, row, values):
    if [v for v in values if not 0 <= v < shape[1]]:
        raise ValueError(f"not a bin: {[v for v in values if not 0 <= v < shape[1]][0]}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        grid = np.ndarray(shape, buffer=shm.buf)  # float64, not int64
        grid[row] = np.bincount(values, minlength=shape[1])
        del grid
    finally:
        shm.close()


def h_np_histogram(name, shape, row, values):
    n_bins = shape[1]
    values = np.asarray(values, dtype=np.int64).ravel()
    outside = values[(values < 0) | (values >= n_bins)]
    if outside.size:
        raise ValueError(f"value {outside[0]!r} is outside 0..{n_bins - 1}")
    counts, _ = np.histogram(values, bins=n_bins, range=(0, n_bins))
    shm = shared_memory.SharedMemory(name=name)
    try:
        view = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        np.copyto(view[row], counts)
        del view
    finally:
        shm.close()


def h_counter_loop(name, shape, row, values):
    counts = collections.Counter()
    for v in values:
        if not 0 <= v < shape[1]:
            raise ValueError(f"{v} is not a bin")
        counts[int(v)] += 1
    shm = shared_memory.SharedMemory(name=name)
    with contextlib.closing(shm):
        table = np.frombuffer(shm.buf, dtype=np.int64).reshape(shape)
        for b in range(shape[1]):
            table[row, b] = counts[b]
        del table


def h_add_at_local_then_copy(name, shape, row, values):
    local = np.zeros(shape[1], dtype=np.int64)
    arr = np.array(values, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= shape[1]):
        first = arr[(arr < 0) | (arr >= shape[1])][0]
        raise ValueError("bad value: %d" % first)  # noqa: UP031 (old style, still right)
    np.add.at(local, arr, 1)
    shm = shared_memory.SharedMemory(name=name)
    try:
        target = np.ndarray(shape, np.int64, shm.buf)
        target[row, :] = local
    finally:
        del target
        shm.close()


def h_np_only_in_comprehension(name, shape, row, values):
    for v in values:
        if not 0 <= v < shape[1]:
            raise ValueError(f"{v!r} is not a bin")
    shm = shared_memory.SharedMemory(name=name)
    try:
        # np appears only inside the comprehension: its own code object before Python 3.12
        views = [np.ndarray(shape, dtype=np.int64, buffer=shm.buf) for _ in range(1)]
        views[0][row] = [values.count(b) for b in range(shape[1])]
        del views
    finally:
        shm.close()


HIST_WRONG = [
    pytest.param(h_skeleton, id="skeleton"),
    pytest.param(h_never_closes, id="never-closes"),
    pytest.param(h_leaks_on_error, id="no-close-on-error-path"),
    pytest.param(h_writes_then_raises, id="writes-row-then-raises"),
    pytest.param(h_unlinks, id="worker-unlinks"),
    pytest.param(h_clips, id="clips-bad-values"),
    pytest.param(h_drops_bad, id="drops-bad-values"),
    pytest.param(h_lets_numpy_complain, id="numpy-error-no-value-shown"),
    pytest.param(h_message_without_value, id="message-without-value"),
    pytest.param(h_upper_bound_only, id="upper-bound-only"),
    pytest.param(h_hardcoded_bins, id="hardcoded-4x10"),
    pytest.param(h_hardcoded_5x8, id="hardcoded-5x8"),
    pytest.param(h_hardcoded_8_bins, id="hardcoded-8-bins"),
    pytest.param(h_always_row_zero, id="always-row-zero"),
    pytest.param(h_zeroes_whole_block, id="zeroes-other-rows"),
    pytest.param(h_crashes_on_empty, id="crashes-on-empty-chunk"),
    pytest.param(h_close_error_swallowed, id="close-buffererror-swallowed"),
    pytest.param(h_float_view, id="float64-view"),
]
HIST_RIGHT = [
    pytest.param(h_np_histogram, id="np-histogram-copyto"),
    pytest.param(h_counter_loop, id="counter-loop-closing"),
    pytest.param(h_add_at_local_then_copy, id="add-at-frombuffer"),
    pytest.param(h_message_in_parentheses_period, id="value-in-parentheses"),
    pytest.param(h_np_only_in_comprehension, id="np-only-in-comprehension"),
]


@pytest.mark.parametrize("answer", HIST_WRONG)
def test_histogram_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check.check_histogram(answer)


@pytest.mark.parametrize("answer", HIST_RIGHT)
def test_histogram_accepts(answer):
    check.check_histogram(answer)
