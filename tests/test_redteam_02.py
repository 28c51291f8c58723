"""Red team for chapter 02's exercises: wrong answers the checks must reject, right ones
they must accept.

Each answer is called exactly as the notebook's check cell calls it. Every function that
runs in a worker comes from ``helpers.pools``, so the answers work under every start method.
"""

import math
import multiprocessing
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from functools import partial
from multiprocessing.pool import ThreadPool

import numpy as np
import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.pools import check_first_failure, check_run_with_retries
from helpers.pools import checked_sqrt, flaky_sqrt, slow_sqrt

# ---------------------------------------------------------------------------------------
# Exercise 1: run_with_retries(values, attempts)
# ---------------------------------------------------------------------------------------


def _retry_loop(pool, values, attempts, retry_on=(ConnectionError,), keep="last"):
    """Shared body: every value's attempts run on `pool`, each retry submitted as soon as
    the previous attempt has failed (so retries overlap with other calls)."""
    results, errors, first_errors = {}, {}, {}
    pending = {x: (1, pool.apply_async(flaky_sqrt, (x, 1))) for x in values}
    while pending:
        for x, (attempt, handle) in list(pending.items()):
            if not handle.ready():
                continue
            del pending[x]
            try:
                results[x] = handle.get(timeout=10)
            except Exception as exc:
                first_errors.setdefault(x, exc)
                if isinstance(exc, retry_on) and attempt < attempts:
                    pending[x] = (attempt + 1, pool.apply_async(flaky_sqrt, (x, attempt + 1)))
                else:
                    errors[x] = exc if keep == "last" else first_errors[x]
        time.sleep(0.005)
    return results, errors


# --- right answers ----------------------------------------------------------------------


def right_poll_ready(values, attempts):
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, attempts)


def right_resubmit_from_callbacks(values, attempts):
    """Retries are submitted from the error callback; the callbacks can't raise."""
    results, errors = {}, {}
    lock = threading.Lock()
    outstanding = [0]
    all_done = threading.Event()

    with multiprocessing.Pool(processes=2) as pool:

        def submit(x, attempt):
            with lock:
                outstanding[0] += 1
            pool.apply_async(
                flaky_sqrt,
                (x, attempt),
                callback=lambda r: finish(x, r, None, attempt),
                error_callback=lambda e: finish(x, None, e, attempt),
            )

        def finish(x, value, exc, attempt):
            try:
                if exc is None:
                    results[x] = value
                elif isinstance(exc, ConnectionError) and attempt < attempts:
                    submit(x, attempt + 1)
                else:
                    errors[x] = exc
            finally:
                with lock:
                    outstanding[0] -= 1
                    if outstanding[0] == 0:
                        all_done.set()

        if not values:
            return results, errors
        for x in values:
            submit(x, 1)
        if not all_done.wait(timeout=30):
            raise TimeoutError("retries did not finish")
    return results, errors


def right_rounds_close_join(values, attempts):
    """Rounds of apply_async, with close()/join() instead of a with block, on an explicit
    spawn context."""
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(2)
    try:
        results, errors = {}, {}
        todo = list(values)
        for attempt in range(1, int(np.int64(attempts)) + 1):
            handles = {x: pool.apply_async(flaky_sqrt, (x, attempt)) for x in todo}
            todo = []
            for x, handle in handles.items():
                try:
                    results[x] = handle.get(timeout=10)
                    errors.pop(x, None)
                except ConnectionError as exc:
                    errors[x] = exc
                    todo.append(x)
                except Exception as exc:
                    errors[x] = exc
            if not todo:
                break
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    return results, errors


# --- wrong answers ----------------------------------------------------------------------


def wrong_serial_in_parent(values, attempts):
    """No pool at all: every attempt runs here, one after another."""
    results, errors = {}, {}
    for x in values:
        for attempt in range(1, attempts + 1):
            try:
                results[x] = flaky_sqrt(x, attempt)
                errors.pop(x, None)
                break
            except ConnectionError as exc:
                errors[x] = exc
            except ValueError as exc:
                errors[x] = exc
                break
    return results, errors


def wrong_apply_in_a_loop(values, attempts):
    """A pool, but apply() waits for each call: never two calls at once."""
    results, errors = {}, {}
    with multiprocessing.Pool(2) as pool:
        for x in values:
            for attempt in range(1, attempts + 1):
                try:
                    results[x] = pool.apply(flaky_sqrt, (x, attempt))
                    errors.pop(x, None)
                    break
                except ConnectionError as exc:
                    errors[x] = exc
                except ValueError as exc:
                    errors[x] = exc
                    break
    return results, errors


def wrong_retries_valueerror(values, attempts):
    """Retries every exception, ValueError too."""
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, attempts, retry_on=(Exception,))


def wrong_no_retries(values, attempts):
    """One attempt each, whatever `attempts` says."""
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, 1)


def wrong_hardcoded_three(values, attempts):
    """Always three attempts."""
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, 3)


def wrong_one_attempt_too_many(values, attempts):
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, attempts + 1)


def wrong_one_attempt_too_few(values, attempts):
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, max(attempts - 1, 1))


def wrong_first_error_kept(values, attempts):
    """errors keeps the first attempt's exception, not the last one's."""
    with multiprocessing.Pool(2) as pool:
        return _retry_loop(pool, values, attempts, keep="first")


def wrong_never_closes(values, attempts):
    """The pool is never closed, terminated or joined: its workers outlive the call."""
    pool = multiprocessing.Pool(2)
    return _retry_loop(pool, values, attempts)


def wrong_serial_retries(values, attempts):
    """First attempts overlap (map_async of wrappers is impossible, so apply_async), but
    every retry then runs alone with apply()."""
    results, errors = {}, {}
    with multiprocessing.Pool(2) as pool:
        first = {x: pool.apply_async(flaky_sqrt, (x, 1)) for x in values}
        for x, handle in first.items():
            try:
                results[x] = handle.get(timeout=10)
                continue
            except ValueError as exc:
                errors[x] = exc
                continue
            except ConnectionError as exc:
                errors[x] = exc
            for attempt in range(2, attempts + 1):
                try:
                    results[x] = pool.apply(flaky_sqrt, (x, attempt))
                    del errors[x]
                    break
                except ConnectionError as exc:
                    errors[x] = exc
    return results, errors


def wrong_one_worker(values, attempts):
    with multiprocessing.Pool(1) as pool:
        return _retry_loop(pool, values, attempts)


def wrong_thread_pool(values, attempts):
    """The same interface, but threads of this process instead of worker processes."""
    with ThreadPool(2) as pool:
        return _retry_loop(pool, values, attempts)


def wrong_plain_float_results(values, attempts):
    """results hold plain floats, not what flaky_sqrt returned."""
    with multiprocessing.Pool(2) as pool:
        results, errors = _retry_loop(pool, values, attempts)
    return {x: float(r) for x, r in results.items()}, errors


def wrong_error_messages(values, attempts):
    """errors hold the messages, not the exceptions."""
    with multiprocessing.Pool(2) as pool:
        results, errors = _retry_loop(pool, values, attempts)
    return results, {x: str(e) for x, e in errors.items()}


def wrong_fake_results(values, attempts):
    """Never calls flaky_sqrt: computes the roots here and invents the errors."""
    results, errors = {}, {}
    for x in values:
        if x < 0:
            errors[x] = ValueError(f"cannot take the square root of a negative number: {x}")
        elif int(x) % 3 >= attempts:
            errors[x] = ConnectionError(f"lost the connection while working on {x}")
        else:
            results[x] = math.sqrt(x)
    return results, errors


def wrong_leaves_with_block_early(values, attempts):
    """Submits everything with apply_async inside `with`, reads the results after it: the
    with block's terminate() has thrown the work away."""
    with multiprocessing.Pool(2) as pool:
        handles = {x: pool.apply_async(flaky_sqrt, (x, 1)) for x in values}
    results, errors = {}, {}
    for x, handle in handles.items():
        try:
            results[x] = handle.get(timeout=0.05)
        except Exception as exc:
            errors[x] = exc
    return results, errors


def wrong_skips_to_the_needed_attempt(values, attempts, method=None):
    """Reads flaky_sqrt's docstring and calls each value once, with the attempt number that
    works (or the last allowed one): no retry ever happens."""
    with multiprocessing.get_context(method).Pool(2) as pool:
        handles = {
            x: pool.apply_async(flaky_sqrt, (x, 1 if x < 0 else min(int(x) % 3 + 1, attempts)))
            for x in values
        }
        results, errors = {}, {}
        for x, handle in handles.items():
            try:
                results[x] = handle.get(timeout=10)
            except Exception as exc:
                errors[x] = exc
    return results, errors


RETRIES_WRONG = {
    "serial-in-parent": wrong_serial_in_parent,
    "apply-in-a-loop": wrong_apply_in_a_loop,
    "retries-valueerror": wrong_retries_valueerror,
    "no-retries": wrong_no_retries,
    "hardcoded-3-attempts": wrong_hardcoded_three,
    "one-attempt-too-many": wrong_one_attempt_too_many,
    "one-attempt-too-few": wrong_one_attempt_too_few,
    "first-error-kept": wrong_first_error_kept,
    "never-closes-pool": wrong_never_closes,
    "retries-one-at-a-time": wrong_serial_retries,
    "one-worker": wrong_one_worker,
    "thread-pool": wrong_thread_pool,
    "plain-float-results": wrong_plain_float_results,
    "error-messages-not-exceptions": wrong_error_messages,
    "fake-results-no-work": wrong_fake_results,
    "with-block-ends-early": wrong_leaves_with_block_early,
    "skips-to-the-needed-attempt": wrong_skips_to_the_needed_attempt,
    # the check counts attempts through a log its workers find: under spawn too
    "skips-to-the-needed-attempt-spawn": partial(wrong_skips_to_the_needed_attempt, method="spawn"),
}
RETRIES_RIGHT = {
    "poll-ready": right_poll_ready,
    "resubmit-from-callbacks": right_resubmit_from_callbacks,
    "rounds-close-join-spawn-numpy": right_rounds_close_join,
}


def _no_children_left():
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)


@pytest.mark.parametrize("answer", RETRIES_WRONG.values(), ids=RETRIES_WRONG.keys())
def test_run_with_retries_rejects(answer):
    try:
        with pytest.raises(ExerciseFailed):
            check_run_with_retries(answer)
    finally:
        _no_children_left()


@pytest.mark.parametrize("answer", RETRIES_RIGHT.values(), ids=RETRIES_RIGHT.keys())
def test_run_with_retries_accepts(answer):
    check_run_with_retries(answer)


# ---------------------------------------------------------------------------------------
# Exercise 2: first_failure(values)
# ---------------------------------------------------------------------------------------

# --- right answers ----------------------------------------------------------------------


def right_imap_chunksize_1(values):
    with multiprocessing.Pool(2) as pool:
        results = pool.imap(slow_sqrt, values, chunksize=1)
        for index in range(len(values)):
            try:
                results.next(timeout=10)
            except Exception as exc:
                return index, exc  # leaving the with block terminates the pool
    return None


def right_error_callback_event(values):
    """apply_async for every value, an Event set by the error callback, then terminate()."""
    failed = threading.Event()
    pool = multiprocessing.Pool(processes=2)
    try:
        handles = [
            pool.apply_async(slow_sqrt, (v,), error_callback=lambda exc: failed.set())
            for v in values
        ]
        deadline = time.monotonic() + 30
        while not failed.is_set() and not all(h.ready() for h in handles):
            if time.monotonic() > deadline:
                raise TimeoutError("no answer")
            failed.wait(0.02)
        for index, handle in enumerate(handles):
            if handle.ready() and not handle.successful():
                try:
                    handle.get(timeout=0)
                except Exception as exc:
                    return np.int64(index), exc  # a NumPy integer index
        return None
    finally:
        pool.terminate()
        pool.join()


def right_executor_first_exception(values):
    """The key points' other way: futures, wait(FIRST_EXCEPTION), cancel the rest."""
    with ProcessPoolExecutor(max_workers=2) as executor:
        futures = [executor.submit(slow_sqrt, v) for v in values]
        done, _ = wait(futures, timeout=30, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
        failed = [f for f in done if f.exception() is not None]
        if not failed:
            return None
        first = failed[0]
        return futures.index(first), first.exception()


# --- wrong answers ----------------------------------------------------------------------


def wrong_map_then_scan(values):
    """map waits for the whole batch before raising."""
    with multiprocessing.Pool(2) as pool:
        try:
            pool.map(slow_sqrt, values)
        except ValueError as exc:
            return next(i for i, v in enumerate(values) if v < 0), exc
    return None


def wrong_serial_in_parent(values):  # noqa: F811 (a different exercise's answer)
    for index, value in enumerate(values):
        try:
            slow_sqrt(value)
        except Exception as exc:
            return index, exc
    return None


def wrong_checked_sqrt_in_parent(values):
    """Never runs the batch: checks the values here, with the fast checked_sqrt."""
    for index, value in enumerate(values):
        try:
            checked_sqrt(value)
        except Exception as exc:
            return index, exc
    return None


def wrong_scan_for_negative(values):
    for index, value in enumerate(values):
        if value < 0:
            return index, ValueError(f"cannot take the square root of a negative number: {value}")
    return None


def wrong_imap_big_chunks_counting(values):
    """imap with chunksize=4, counting results to find the index: an error ends its
    chunk, so the count says where the chunk started."""
    with multiprocessing.Pool(2) as pool:
        index = 0
        try:
            for _ in pool.imap(slow_sqrt, values, chunksize=4):
                index += 1
        except Exception as exc:
            return index, exc
    return None


def wrong_never_terminates_real(values):
    pool = multiprocessing.Pool(2)
    results = pool.imap(slow_sqrt, values)
    for index in range(len(values)):
        try:
            results.next(timeout=10)
        except Exception as exc:
            return index, exc
    pool.close()
    pool.join()
    return None


def wrong_close_join_after_error(values):
    """Stops reading at the error, but close()+join() lets the whole batch finish."""
    pool = multiprocessing.Pool(2)
    try:
        results = pool.imap(slow_sqrt, values)
        for index in range(len(values)):
            try:
                results.next(timeout=10)
            except Exception as exc:
                return index, exc
        return None
    finally:
        pool.close()
        pool.join()


def wrong_returns_value(values):
    """(value, exception) instead of (index, exception)."""
    answer = right_imap_chunksize_1(values)
    return None if answer is None else (values[answer[0]], answer[1])


def wrong_exception_as_string(values):
    answer = right_imap_chunksize_1(values)
    return None if answer is None else (answer[0], str(answer[1]))


def wrong_no_failure_tuple(values):
    """Says (None, None) when nothing fails."""
    return right_imap_chunksize_1(values) or (None, None)


def wrong_one_worker(values):  # noqa: F811 (a different exercise's answer)
    with multiprocessing.Pool(1) as pool:
        results = pool.imap(slow_sqrt, values, chunksize=1)
        for index in range(len(values)):
            try:
                results.next(timeout=10)
            except Exception as exc:
                return index, exc
    return None


def wrong_thread_pool(values):  # noqa: F811 (a different exercise's answer)
    with ThreadPool(2) as pool:
        results = pool.imap(slow_sqrt, values, chunksize=1)
        for index in range(len(values)):
            try:
                results.next(timeout=10)
            except Exception as exc:
                return index, exc
    return None


def wrong_imap_unordered_counting(values):
    """Stops at the first error, but counts results that arrive in completion order."""
    with multiprocessing.Pool(2) as pool:
        index = 0
        try:
            for _ in pool.imap_unordered(slow_sqrt, values):
                index += 1
        except Exception as exc:
            return index, exc
    return None


def right_apply_async_in_order(values):
    """apply_async for every value, results read in input order."""
    with multiprocessing.Pool(processes=2) as pool:
        handles = [pool.apply_async(slow_sqrt, (v,)) for v in values]
        for index, handle in enumerate(handles):
            try:
                handle.get(timeout=30)
            except ValueError as exc:
                return index, exc
    return None


FIRST_FAILURE_WRONG = {
    "map-then-scan": wrong_map_then_scan,
    "serial-in-parent": wrong_serial_in_parent,
    "checked-sqrt-in-parent": wrong_checked_sqrt_in_parent,
    "scan-for-negative": wrong_scan_for_negative,
    "imap-chunks-of-4-counting": wrong_imap_big_chunks_counting,
    "never-terminates": wrong_never_terminates_real,
    "close-join-after-error": wrong_close_join_after_error,
    "returns-value-not-index": wrong_returns_value,
    "exception-as-string": wrong_exception_as_string,
    "no-failure-none-none": wrong_no_failure_tuple,
    "one-worker": wrong_one_worker,
    "thread-pool": wrong_thread_pool,
    "imap-unordered-counting": wrong_imap_unordered_counting,
}
FIRST_FAILURE_RIGHT = {
    "imap-chunksize-1": right_imap_chunksize_1,
    "error-callback-event-numpy-index": right_error_callback_event,
    "executor-first-exception": right_executor_first_exception,
    "apply-async-in-order": right_apply_async_in_order,
}


@pytest.mark.parametrize("answer", FIRST_FAILURE_WRONG.values(), ids=FIRST_FAILURE_WRONG.keys())
def test_first_failure_rejects(answer):
    try:
        with pytest.raises(ExerciseFailed):
            check_first_failure(answer)
    finally:
        _no_children_left()


@pytest.mark.parametrize("answer", FIRST_FAILURE_RIGHT.values(), ids=FIRST_FAILURE_RIGHT.keys())
def test_first_failure_accepts(answer):
    check_first_failure(answer)
