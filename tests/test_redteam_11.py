"""Red team for chapter 11's exercises: answers that must be rejected, and unusual right ones.

Each case is a learner's answer, written the way the notebook asks (a plain function that the
check calls), and the verdict the check must give: ``ExerciseFailed`` for a wrong answer, no
exception for a right one. The answers' helpers live in this module: loky and Dask send them to
their workers with cloudpickle, as they would a notebook's functions.
"""

import concurrent.futures
import math
import os
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor

import cloudpickle
import numpy as np
import pytest
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from helpers.beyond import BlockResult, block_total, row_blocks
from helpers.checks import ExerciseFailed
from helpers.checks.beyond import check_file_row_totals, check_run_batch
from helpers.futures import checked_sqrt

# A notebook's functions travel to loky's and Dask's workers by value (cloudpickle can't
# import __main__ there): send this module's answers the same way.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# An answer that returns joblib's generator unconsumed makes joblib warn when it is dropped.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tasks .*(executed|cancelled):UserWarning"),
    pytest.mark.filterwarnings("ignore:A generator produced by joblib.Parallel:UserWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def stop_loky_workers():
    """loky keeps its workers after each answer: stop them when this module is done."""
    yield
    get_reusable_executor().shutdown(wait=True)


# ---------------------------------------------------------------------------------------------
# Exercise 1: file_row_totals(path, block)
# ---------------------------------------------------------------------------------------------


def _blocks(path, block):
    rows = len(np.load(path, mmap_mode="r"))
    return row_blocks(rows, block)


def ft_loads_into_memory(path, block):
    """np.load without mmap_mode: joblib memory-maps a big array into ITS temp folder."""
    data = np.load(path)
    return Parallel(n_jobs=2)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def ft_no_memmap_pickles(path, block):
    """Read into memory and send pickled copies (max_nbytes=None)."""
    data = np.load(path)
    return Parallel(n_jobs=2, max_nbytes=None)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def ft_always_joblib_folder(path, block):
    """Read into memory and force joblib's memmapping of every array (max_nbytes=0)."""
    data = np.load(path)
    return Parallel(n_jobs=2, max_nbytes=0)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def ft_serial_in_parent(path, block):
    """The right map, but no workers at all: a loop in the caller's process."""
    data = np.load(path, mmap_mode="r")
    return [block_total(data, s, e) for s, e in row_blocks(len(data), block)]


def ft_threading_backend(path, block):
    """Threads of the caller's process, not worker processes."""
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2, backend="threading")(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def ft_n_jobs_1(path, block):
    """joblib with n_jobs=1 runs every task in the caller's process."""
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=1)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def _load_block(path, start, stop):
    return block_total(np.load(path), start, stop)  # the whole file into the worker's memory


def ft_worker_reads_whole_file(path, block):
    """Each worker np.load()s the file into its own memory."""
    return Parallel(n_jobs=2)(delayed(_load_block)(path, s, e) for s, e in _blocks(path, block))


def ft_copy_of_memmap(path, block):
    """Memory-map, then np.array() it: a copy in the caller's memory."""
    data = np.array(np.load(path, mmap_mode="r"))
    return Parallel(n_jobs=2)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def ft_hardcoded_block(path, block):
    """Ignores `block`: always 2 rows per block."""
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2)(delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), 2))


def ft_one_block(path, block):
    """Ignores `block`: the whole file as one block."""
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2)([delayed(block_total)(data, 0, len(data))])


def ft_drops_partial_block(path, block):
    """Only full blocks: the last, shorter block is lost."""
    data = np.load(path, mmap_mode="r")
    starts = range(0, len(data) - block + 1, block)
    return Parallel(n_jobs=2)(delayed(block_total)(data, s, s + block) for s in starts)


def ft_array_split(path, block):
    """ceil(rows / block) near-equal pieces: other boundaries than row_blocks."""
    data = np.load(path, mmap_mode="r")
    pieces = np.array_split(np.arange(len(data)), max(1, math.ceil(len(data) / block)))
    ranges = [(int(p[0]), int(p[-1]) + 1) for p in pieces if len(p)]
    return Parallel(n_jobs=2)(delayed(block_total)(data, s, e) for s, e in ranges)


def ft_reversed(path, block):
    """Results in the wrong order."""
    data = np.load(path, mmap_mode="r")
    blocks = row_blocks(len(data), block)[::-1]
    return Parallel(n_jobs=2)(delayed(block_total)(data, s, e) for s, e in blocks)


def ft_totals_only(path, block):
    """Returns the totals, not what block_total returned."""
    data = np.load(path, mmap_mode="r")
    results = Parallel(n_jobs=2)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )
    return [r.total for r in results]


def ft_forged(path, block):
    """Sums serially in the caller and forges BlockResults that claim a worker read the file."""
    data = np.load(path, mmap_mode="r")
    worker = Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(1))[0]
    source = os.path.realpath(path)
    return [
        BlockResult(s, e, float(np.asarray(data[s:e]).sum()), True, worker, source)
        for s, e in row_blocks(len(data), block)
    ]


def ft_reads_whole_for_shape(path, block):
    """Workers memory-map the file, but the caller reads it all into memory to count rows."""
    rows = len(np.load(path))
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2)(delayed(block_total)(data, s, e) for s, e in row_blocks(rows, block))


def ft_private_copy_file(path, block):
    """Copies the array to a file of its own and memory-maps that one."""
    with tempfile.TemporaryDirectory(prefix="rt11-") as folder:
        copy = os.path.join(folder, "copy.npy")
        np.save(copy, np.load(path))
        data = np.load(copy, mmap_mode="r")
        return Parallel(n_jobs=2)(
            delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
        )


def ft_returns_generator(path, block):
    """Returns joblib's generator, not the list (nothing has run when it returns)."""
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2, return_as="generator")(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


# --- right answers ---


def ft_right_mmap_in_parent(path, block):
    data = np.load(path, mmap_mode="r")
    return Parallel(n_jobs=2)(
        delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
    )


def _mmap_block(path, start, stop):
    return block_total(np.load(path, mmap_mode="r"), start, stop)


def ft_right_each_worker_opens(path, block):
    """Each worker opens the file itself; the caller reads only the header."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = {1: np.lib.format.read_array_header_1_0}.get(
            major, np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(f)
    return Parallel(n_jobs=2)(
        delayed(_mmap_block)(path, s, e) for s, e in row_blocks(shape[0], block)
    )


def ft_right_open_memmap_unordered(path, block):
    """open_memmap, results as they finish, sorted back; numpy ints for the bounds."""
    data = np.lib.format.open_memmap(path, mode="r")
    starts = np.arange(0, data.shape[0], block)
    stops = np.minimum(starts + block, data.shape[0])
    got = Parallel(n_jobs=-1, return_as="generator_unordered")(
        delayed(block_total)(data, s, e) for s, e in zip(starts, stops, strict=True)
    )
    return sorted(got, key=lambda r: r.start)


def ft_right_copy_on_write(path, block):
    """mmap_mode="c" (copy-on-write) is still a map of the file."""
    data = np.load(path, mmap_mode="c")
    return list(
        Parallel(n_jobs=2, return_as="generator")(
            delayed(block_total)(data, s, e) for s, e in row_blocks(len(data), block)
        )
    )


FILE_WRONG = {
    "loads-into-memory": ft_loads_into_memory,
    "pickled-copies": ft_no_memmap_pickles,
    "joblib-temp-folder": ft_always_joblib_folder,
    "serial-in-caller": ft_serial_in_parent,
    "threading-backend": ft_threading_backend,
    "n-jobs-1": ft_n_jobs_1,
    "worker-reads-whole-file": ft_worker_reads_whole_file,
    "copy-of-memmap": ft_copy_of_memmap,
    "hardcoded-block": ft_hardcoded_block,
    "one-block": ft_one_block,
    "drops-partial-block": ft_drops_partial_block,
    "array-split-boundaries": ft_array_split,
    "reversed-order": ft_reversed,
    "totals-only": ft_totals_only,
    "forged-results": ft_forged,
    "reads-whole-for-shape": ft_reads_whole_for_shape,
    "private-copy-file": ft_private_copy_file,
    "returns-generator": ft_returns_generator,
}
FILE_RIGHT = {
    "mmap-in-caller": ft_right_mmap_in_parent,
    "each-worker-opens": ft_right_each_worker_opens,
    "open-memmap-unordered-numpy-bounds": ft_right_open_memmap_unordered,
    "copy-on-write-generator": ft_right_copy_on_write,
}


@pytest.mark.parametrize("answer", FILE_WRONG.values(), ids=FILE_WRONG.keys())
def test_file_row_totals_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check_file_row_totals(answer)


@pytest.mark.parametrize("answer", FILE_RIGHT.values(), ids=FILE_RIGHT.keys())
def test_file_row_totals_accepts(answer):
    check_file_row_totals(answer)


def test_file_row_totals_accepts_a_right_answer_after_wrong_attempts():
    """In a notebook the right answer often comes after wrong ones. Workers that read the
    whole file, then an abandoned generator that makes loky replace them: what the old
    workers read must not be counted against the right answer."""
    for wrong in (ft_worker_reads_whole_file, ft_returns_generator):
        with pytest.raises(ExerciseFailed):
            check_file_row_totals(wrong)
    check_file_row_totals(ft_right_mmap_in_parent)


# ---------------------------------------------------------------------------------------------
# Exercise 2: run_batch(executor, values)
# ---------------------------------------------------------------------------------------------


def rb_serial(executor, values):
    """Submit, wait for it, submit the next: no two calls overlap."""
    results, errors = {}, {}
    for v in values:
        future = executor.submit(checked_sqrt, v)
        try:
            results[v] = future.result()
        except Exception as exc:
            errors[v] = exc
    return results, errors


def rb_in_caller(executor, values):
    """Never uses the executor."""
    results, errors = {}, {}
    for v in values:
        try:
            results[v] = checked_sqrt(v)
        except Exception as exc:
            errors[v] = exc
    return results, errors


def rb_shuts_down(executor, values):
    """Right results, but shuts down the caller's executor."""
    with executor:
        futures = {v: executor.submit(checked_sqrt, v) for v in values}
    results, errors = {}, {}
    for v, f in futures.items():
        if f.exception() is None:
            results[v] = f.result()
        else:
            errors[v] = f.exception()
    return results, errors


def rb_map_stops_at_error(executor, values):
    """executor.map: its iterator stops at the first failure."""
    results, errors = {}, {}
    values = list(values)
    try:
        for v, r in zip(values, executor.map(checked_sqrt, values), strict=False):
            results[v] = r
    except Exception as exc:
        errors[values[len(results)]] = exc
    return results, errors


def _submit_all(executor, values):
    return {v: executor.submit(checked_sqrt, v) for v in values}


def rb_error_strings(executor, values):
    """Maps failures to the error's text, not the exception."""
    results, errors = {}, {}
    for v, f in _submit_all(executor, values).items():
        try:
            results[v] = f.result()
        except Exception as exc:
            errors[v] = str(exc)
    return results, errors


def rb_error_types(executor, values):
    """Maps failures to the exception's class."""
    results, errors = {}, {}
    for v, f in _submit_all(executor, values).items():
        try:
            results[v] = f.result()
        except Exception as exc:
            errors[v] = type(exc)
    return results, errors


def rb_predicts_errors(executor, values):
    """Never submits the negative values: makes up their ValueError itself."""
    results, errors = {}, {}
    futures = {}
    for v in values:
        if v < 0:
            errors[v] = ValueError(f"cannot take the square root of a negative number: {v}")
        else:
            futures[v] = executor.submit(checked_sqrt, v)
    for v, f in futures.items():
        results[v] = f.result()
    return results, errors


def rb_index_keys(executor, values):
    """Keys are positions, not values."""
    results, errors = {}, {}
    for i, f in enumerate(executor.submit(checked_sqrt, v) for v in list(values)):
        try:
            results[i] = f.result()
        except Exception as exc:
            errors[i] = exc
    return results, errors


def rb_drops_zero(executor, values):
    """Truthiness bug: a result of 0.0 is dropped."""
    results, errors = {}, {}
    for v, f in _submit_all(executor, values).items():
        if f.exception() is not None:
            errors[v] = f.exception()
        elif f.result():
            results[v] = f.result()
    return results, errors


def rb_first_completed_only(executor, values):
    """Returns as soon as anything has finished."""
    futures = _submit_all(executor, values)
    concurrent.futures.wait(futures.values(), return_when=FIRST_COMPLETED)
    results, errors = {}, {}
    for v, f in futures.items():
        if f.done():
            if f.exception() is None:
                results[v] = f.result()
            else:
                errors[v] = f.exception()
    return results, errors


def rb_own_pool(executor, values):
    """Ignores the given executor: runs on a thread pool of its own (closed properly)."""
    with ThreadPoolExecutor(max_workers=8) as own:
        return rb_right_as_completed(own, values)


def rb_none_for_errors(executor, values):
    """Failed values also appear in results, as None."""
    results, errors = {}, {}
    for v, f in _submit_all(executor, values).items():
        exc = f.exception()
        results[v] = None if exc else f.result()
        if exc:
            errors[v] = exc
    return results, errors


def rb_local_results(executor, values):
    """Submits everything (the calls overlap), then computes the answers itself."""
    futures = _submit_all(executor, values)
    concurrent.futures.wait(futures.values())
    results, errors = {}, {}
    for v in values:
        try:
            results[v] = math.sqrt(v)
        except ValueError as exc:
            errors[v] = ValueError(f"cannot take the square root of a negative number: {v}")
            del exc
    return results, errors


def rb_cached(executor, values, _cache={}):  # noqa: B006 - the trick is the shared default
    """Remembers answers between calls: a later batch with the same values isn't run."""
    results, errors = {}, {}
    todo = [v for v in values if v not in _cache]
    for v, f in _submit_all(executor, todo).items():
        _cache[v] = f
    for v in values:
        f = _cache[v]
        if f.exception() is None:
            results[v] = f.result()
        else:
            errors[v] = f.exception()
    return results, errors


# --- right answers ---


def rb_right_as_completed(executor, values):
    futures = {executor.submit(checked_sqrt, v): v for v in values}
    results, errors = {}, {}
    for f in concurrent.futures.as_completed(futures):
        v = futures[f]
        try:
            results[v] = f.result()
        except Exception as exc:
            errors[v] = exc
    return results, errors


def rb_right_keyword_wait(executor, values):
    """Keyword argument, wait() then exception(); dict.get style."""
    futures = [(v, executor.submit(checked_sqrt, x=v)) for v in values]
    concurrent.futures.wait([f for _, f in futures])
    results, errors = {}, {}
    for v, f in futures:
        exc = f.exception()
        (errors if exc is not None else results)[v] = exc if exc is not None else f.result()
    return results, errors


def rb_right_two_passes(executor, values):
    """Submit all, then collect in input order with result() in a try."""
    values = list(values)
    futures = [executor.submit(checked_sqrt, v) for v in values]
    results, errors = {}, {}
    for v, f in zip(values, futures, strict=True):
        try:
            results[v] = f.result(timeout=60)
        except ValueError as exc:
            errors[v] = exc
    return results, errors


def rb_right_callbacks(executor, values):
    """add_done_callback into the dicts, then wait for all."""
    import time

    results, errors = {}, {}

    def record(v):
        def done(f):
            exc = f.exception()
            if exc is None:
                results[v] = f.result()
            else:
                errors[v] = exc

        return done

    futures = []
    for v in values:
        f = executor.submit(checked_sqrt, v)
        f.add_done_callback(record(v))
        futures.append(f)
    concurrent.futures.wait(futures)
    # a callback may run just after wait() returns: give them a moment
    deadline = time.monotonic() + 10
    while len(results) + len(errors) < len(set(values)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return results, errors


BATCH_WRONG = {
    "serial-submit-then-result": rb_serial,
    "calls-in-caller": rb_in_caller,
    "shuts-down-executor": rb_shuts_down,
    "map-stops-at-error": rb_map_stops_at_error,
    "error-strings": rb_error_strings,
    "error-classes": rb_error_types,
    "predicts-errors": rb_predicts_errors,
    "index-keys": rb_index_keys,
    "drops-zero": rb_drops_zero,
    "first-completed-only": rb_first_completed_only,
    "own-thread-pool": rb_own_pool,
    "none-for-errors": rb_none_for_errors,
    "local-results": rb_local_results,
    "cached-between-calls": rb_cached,
}
BATCH_RIGHT = {
    "as-completed": rb_right_as_completed,
    "keyword-wait-exception": rb_right_keyword_wait,
    "two-passes-result-timeout": rb_right_two_passes,
    "done-callbacks": rb_right_callbacks,
}


@pytest.mark.parametrize("answer", BATCH_WRONG.values(), ids=BATCH_WRONG.keys())
def test_run_batch_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check_run_batch(answer)


@pytest.mark.parametrize("answer", BATCH_RIGHT.values(), ids=BATCH_RIGHT.keys())
def test_run_batch_accepts(answer):
    check_run_batch(answer)
