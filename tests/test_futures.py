"""Unit tests for chapter 03's workers (helpers.futures) and exercise checks."""

import multiprocessing
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool

import pytest

from helpers import futures
from helpers.checks import ExerciseFailed
from helpers.checks.futures import check_bounded_map, check_first_success


def test_fetch_from_and_sleep_then_fail():
    assert futures.fetch_from("eu", 0.01) == "eu"
    with pytest.raises(TypeError, match="mirror"):
        futures.fetch_from(3, 0.01)
    with pytest.raises(ValueError, match="seconds"):
        futures.fetch_from("eu", -1)
    with pytest.raises(RuntimeError, match="failed after"):
        futures.sleep_then_fail(0.01)
    with pytest.raises(TypeError, match="seconds"):
        futures.sleep_then_fail("1")


def test_reexports_are_the_pool_workers():
    from helpers import pools

    assert futures.checked_sqrt is pools.checked_sqrt
    assert futures.exit_abruptly is pools.exit_abruptly
    assert futures.logged_sqrt is pools.logged_sqrt


def test_start_a_child_from_an_executor_worker_but_not_a_pool_worker():
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as executor:
        assert executor.submit(futures.start_a_child).result(timeout=30) == (False, 0)
    with ctx.Pool(1) as pool:
        with pytest.raises(AssertionError, match="daemonic"):
            pool.apply_async(futures.start_a_child).get(timeout=30)


def test_exit_abruptly_breaks_a_process_pool():
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as executor:
        crash = executor.submit(futures.exit_abruptly, 1)
        with pytest.raises(BrokenProcessPool):
            crash.result(timeout=30)


# --- checks -----------------------------------------------------------------


def right_bounded_map(executor, fn, items, limit):
    results, running = {}, {}
    for i, item in enumerate(items):
        if len(running) >= limit:
            done, _ = wait(running, timeout=30, return_when=FIRST_COMPLETED)
            for f in done:
                results[running.pop(f)] = f.result()
        running[executor.submit(fn, item)] = i
    done, _ = wait(running, timeout=30)
    for f in done:
        results[running[f]] = f.result()
    return [results[i] for i in range(len(results))]


def test_check_bounded_map_passes_the_right_answer(capsys):
    check_bounded_map(right_bounded_map)
    assert capsys.readouterr().out.startswith("Correct:")


def bounded_skeleton(executor, fn, items, limit):
    return None


def bounded_to_three(executor, fn, items, limit):
    return right_bounded_map(executor, fn, items, 3)


def bounded_empty_crashes(executor, fn, items, limit):
    results = right_bounded_map(executor, fn, items, limit)
    results[0]  # IndexError on an empty input
    return results


def bounded_with_map(executor, fn, items, limit):
    return list(executor.map(fn, items))


def bounded_in_batches(executor, fn, items, limit):
    items, results = list(items), []
    for start in range(0, len(items), limit):
        batch = [executor.submit(fn, x) for x in items[start : start + limit]]
        results += [f.result(timeout=30) for f in batch]
    return results


def bounded_completion_order(executor, fn, items, limit):
    results, running = [], set()
    for item in items:
        if len(running) >= limit:
            done, running = wait(running, timeout=30, return_when=FIRST_COMPLETED)
            results += [f.result() for f in done]
        running.add(executor.submit(fn, item))
    results += [f.result() for f in as_completed(running, timeout=30)]
    return results


def bounded_without_executor(executor, fn, items, limit):
    return [fn(x) for x in items]


def bounded_raises(executor, fn, items, limit):
    raise KeyError("oops")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (bounded_skeleton, "never called executor.submit"),
        (bounded_with_map, "in flight at once"),
        (bounded_in_batches, "waited for ALL"),
        (bounded_completion_order, "not in input order"),
        (bounded_without_executor, "never called executor.submit"),
        (bounded_raises, "raised KeyError"),
        (bounded_to_three, "limit=1): 3 calls were in flight"),
        (bounded_empty_crashes, "raised IndexError"),
    ],
)
def test_check_bounded_map_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_bounded_map(wrong)
    assert hint in str(info.value)


def test_check_bounded_map_fails_the_skeleton_fast():
    start = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check_bounded_map(bounded_skeleton)
    assert time.perf_counter() - start < 1


def test_check_bounded_map_does_not_hang():
    def hangs(executor, fn, items, limit):
        threading.Event().wait(5)

    start = time.perf_counter()
    with pytest.raises(ExerciseFailed, match="did not return"):
        check_bounded_map(hangs, timeout=0.5)
    assert time.perf_counter() - start < 3


def right_first_success(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    pending = set(futures_)
    try:
        while pending:
            done, pending = wait(pending, timeout=30, return_when=FIRST_COMPLETED)
            if not done:
                raise TimeoutError("no mirror answered within 30 s")
            for future in done:
                if future.exception() is None:
                    return futures_[future], future.result()
        return None
    finally:
        for future in pending:
            future.cancel()


def with_as_completed(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    try:
        for future in as_completed(futures_, timeout=30):
            try:
                return [futures_[future], future.result()]
            except Exception:
                continue
    finally:
        for future in futures_:
            future.cancel()


@pytest.mark.parametrize("answer", [right_first_success, with_as_completed])
def test_check_first_success_passes_right_answers(capsys, answer):
    check_first_success(answer)
    assert capsys.readouterr().out.startswith("Correct:")


def first_to_finish(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    done, not_done = wait(futures_, timeout=10, return_when=FIRST_COMPLETED)
    for f in not_done:
        f.cancel()
    future = next(iter(done))
    return futures_[future], future.result()


def in_input_order(executor, fetch, mirrors):
    for name, data in zip(mirrors, executor.map(fetch, mirrors), strict=True):
        return name, data


def shuts_down(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    for future in as_completed(futures_, timeout=10):
        if future.exception() is None:
            executor.shutdown(wait=False, cancel_futures=True)
            return futures_[future], future.result()
    return None


def no_cancel(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    for future in as_completed(futures_, timeout=10):
        if future.exception() is None:
            return futures_[future], future.result()
    return None


def in_this_thread(executor, fetch, mirrors):
    executor.submit(len, "")
    for name in mirrors:
        try:
            return name, fetch(name)
        except Exception:
            continue
    return None


def waits_for_all(executor, fetch, mirrors):
    futures_ = {executor.submit(fetch, name): name for name in mirrors}
    wait(futures_, timeout=10)
    for future, name in futures_.items():
        if future.exception() is None:
            return name, future.result()
    return None


def name_only(executor, fetch, mirrors):
    answer = right_first_success(executor, fetch, mirrors)
    return answer and answer[0]


def first_success_skeleton(executor, fetch, mirrors):
    return None


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (first_success_skeleton, "submit one fetch(name) per mirror"),
        (first_to_finish, "raised"),
        (in_input_order, "returned only after"),
        (shuts_down, "no longer takes work"),
        (no_cancel, "still queued"),
        (in_this_thread, "not on the executor"),
        (waits_for_all, "returned only after"),
        (name_only, "return (name, data)"),
        ("first_success", "must be a function defined with def"),
    ],
)
def test_check_first_success_fails_wrong_answers(wrong, hint):
    with pytest.raises((ExerciseFailed, TypeError)) as info:
        check_first_success(wrong)
    assert hint in str(info.value)


def test_check_first_success_fails_the_skeleton_fast():
    start = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check_first_success(first_success_skeleton)
    assert time.perf_counter() - start < 1
