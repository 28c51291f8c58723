"""Unit tests for chapter 03's workers (helpers.futures) and exercise checks."""

import multiprocessing
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool

import pytest

from helpers import futures
from helpers.checks import ExerciseFailed
from helpers.checks.futures import check_bounded_map, check_fastest


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


def right_fastest(executor, mirrors):
    pending = [executor.submit(futures.fetch_from, m, s) for m, s in mirrors.items()]
    done, not_done = wait(pending, timeout=10, return_when=FIRST_COMPLETED)
    for f in not_done:
        f.cancel()
    return next(iter(done)).result()


def test_check_fastest_passes_the_right_answer(capsys):
    check_fastest(right_fastest)
    assert capsys.readouterr().out.startswith("Correct:")


def in_input_order(executor, mirrors):
    return next(executor.map(futures.fetch_from, mirrors, mirrors.values()))


def waits_for_all(executor, mirrors):
    pending = {executor.submit(futures.fetch_from, m, s): s for m, s in mirrors.items()}
    wait(pending)
    return min(pending, key=pending.get).result()


def no_cancel(executor, mirrors):
    pending = [executor.submit(futures.fetch_from, m, s) for m, s in mirrors.items()]
    return next(as_completed(pending, timeout=10)).result()


def without_executor(executor, mirrors):
    return min(mirrors, key=mirrors.get)


def fastest_skeleton(executor, mirrors):
    return None


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (fastest_skeleton, "never called executor.submit"),
        (in_input_order, "input order"),
        (waits_for_all, "waited for more than the first"),
        (no_cancel, "still queued"),
        (without_executor, "never called executor.submit"),
        ("fastest", "must be a function defined with def"),
    ],
)
def test_check_fastest_fails_wrong_answers(wrong, hint):
    with pytest.raises((ExerciseFailed, TypeError)) as info:
        check_fastest(wrong)
    assert hint in str(info.value)


def test_check_fastest_fails_the_skeleton_fast():
    start = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check_fastest(fastest_skeleton)
    assert time.perf_counter() - start < 1
