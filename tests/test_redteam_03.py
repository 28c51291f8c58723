"""Red team for chapter 03's exercises: wrong answers the checks must reject, right ones
they must accept. The checks run the answers on thread pools, so the answers live here."""

import collections
import itertools
import queue
import threading
from concurrent.futures import (
    FIRST_COMPLETED,
    ThreadPoolExecutor,
    as_completed,
    wait,
)

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.futures import check_bounded_map, check_first_success

# ---------------------------------------------------------------------------------------
# Exercise 1: bounded_map(executor, fn, items, limit)
# ---------------------------------------------------------------------------------------

# --- right answers ----------------------------------------------------------------------


def right_wait_first_completed(executor, fn, items, limit):
    results = {}
    in_flight = {}
    source = enumerate(items)
    for index, item in itertools.islice(source, limit):
        in_flight[executor.submit(fn, item)] = index
    while in_flight:
        done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            results[in_flight.pop(future)] = future.result()
            for index, item in itertools.islice(source, 1):
                in_flight[executor.submit(fn, item)] = index
    return [results[i] for i in range(len(results))]


def right_semaphore_callbacks(executor, fn, items, limit):
    """A semaphore of `limit` slots, released by each future's done-callback."""
    slots = threading.BoundedSemaphore(int(limit))
    futures = []
    for item in items:
        while not slots.acquire(timeout=0.5):
            pass
        future = executor.submit(fn, item)
        future.add_done_callback(lambda _: slots.release())
        futures.append(future)
    return [f.result(timeout=30) for f in futures]


def right_done_queue(executor, fn, items, limit):
    """Done-callbacks put finished futures on a queue; one finished, one more submitted.
    Results are gathered in a deque-indexed list."""
    finished = queue.Queue()
    futures = collections.deque()
    running = 0
    for item in items:
        if running == limit:
            finished.get(timeout=30)
            running -= 1
        future = executor.submit(fn, item)
        running += 1
        future.add_done_callback(finished.put)
        futures.append(future)
    out = []
    while futures:
        out.append(futures.popleft().result(timeout=30))
    return out


# --- wrong answers ----------------------------------------------------------------------


def wrong_executor_map(executor, fn, items, limit):
    return list(executor.map(fn, items))


def wrong_batches(executor, fn, items, limit):
    """limit at a time, and the next batch only when the whole batch is done."""
    out = []
    items = iter(items)
    while batch := list(itertools.islice(items, limit)):
        futures = [executor.submit(fn, item) for item in batch]
        out.extend(f.result(timeout=30) for f in futures)
    return out


def wrong_serial_in_caller(executor, fn, items, limit):
    return [fn(item) for item in items]


def wrong_one_at_a_time(executor, fn, items, limit):
    return [executor.submit(fn, item).result(timeout=30) for item in items]


def wrong_completion_order(executor, fn, items, limit):
    out = []
    in_flight = set()
    for item in items:
        if len(in_flight) >= limit:
            done, in_flight = wait(in_flight, timeout=30, return_when=FIRST_COMPLETED)
            out.extend(f.result() for f in done)
        in_flight.add(executor.submit(fn, item))
    out.extend(f.result() for f in as_completed(in_flight, timeout=30))
    return out


def wrong_limit_plus_one(executor, fn, items, limit):
    return right_wait_first_completed(executor, fn, items, limit + 1)


def wrong_hardcoded_limit(executor, fn, items, limit):
    return right_wait_first_completed(executor, fn, items, 2)


def wrong_reads_whole_input(executor, fn, items, limit):
    """list(items) first: a long generator is read to the end before anything runs."""
    return right_wait_first_completed(executor, fn, list(items), limit)


def wrong_busy_poll(executor, fn, items, limit):
    """Waits by spinning on done() without ever blocking."""
    futures = []
    for item in items:
        while sum(not f.done() for f in futures) >= limit:
            pass
        futures.append(executor.submit(fn, item))
    while not all(f.done() for f in futures):
        pass
    return [f.result() for f in futures]


def wrong_empty_returns_none(executor, fn, items, limit):
    out = right_wait_first_completed(executor, fn, items, limit)
    return out or None


def wrong_keyed_by_item(executor, fn, items, limit):
    """Results keyed by the item: repeated items get one result."""
    items = list(items)
    by_item = {}
    in_flight = {}
    for item in items:
        if len(in_flight) >= limit:
            done, _ = wait(in_flight, timeout=30, return_when=FIRST_COMPLETED)
            for f in done:
                by_item[in_flight.pop(f)] = f.result()
        in_flight[executor.submit(fn, item)] = item
    for f in as_completed(in_flight, timeout=30):
        by_item[in_flight[f]] = f.result()
    return [by_item[item] for item in dict.fromkeys(items)]


def wrong_own_executor(executor, fn, items, limit):
    """Ignores the caller's executor and starts its own, with `limit` workers."""
    with ThreadPoolExecutor(max_workers=limit) as own:
        return list(own.map(fn, items))


def wrong_shuts_down_callers_executor(executor, fn, items, limit):
    out = right_wait_first_completed(executor, fn, items, limit)
    executor.shutdown(wait=True)
    return out


def wrong_drops_failures(executor, fn, items, limit):
    """Swallows a call's exception and puts None in its place."""

    def safe(item):
        try:
            return fn(item)
        except Exception:
            return None

    return right_wait_first_completed(executor, safe, items, limit)


BOUNDED_WRONG = {
    "executor-map": wrong_executor_map,
    "whole-batches": wrong_batches,
    "serial-in-caller": wrong_serial_in_caller,
    "one-at-a-time": wrong_one_at_a_time,
    "completion-order": wrong_completion_order,
    "limit-plus-one": wrong_limit_plus_one,
    "hardcoded-limit-2": wrong_hardcoded_limit,
    "reads-whole-input": wrong_reads_whole_input,
    "busy-poll": wrong_busy_poll,
    "empty-returns-none": wrong_empty_returns_none,
    "keyed-by-item": wrong_keyed_by_item,
    "own-executor": wrong_own_executor,
    "shuts-down-callers-executor": wrong_shuts_down_callers_executor,
    "swallows-exceptions": wrong_drops_failures,
}
BOUNDED_RIGHT = {
    "wait-first-completed": right_wait_first_completed,
    "semaphore-callbacks": right_semaphore_callbacks,
    "done-queue": right_done_queue,
}


@pytest.mark.parametrize("answer", BOUNDED_WRONG.values(), ids=BOUNDED_WRONG.keys())
def test_bounded_map_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check_bounded_map(answer)


@pytest.mark.parametrize("answer", BOUNDED_RIGHT.values(), ids=BOUNDED_RIGHT.keys())
def test_bounded_map_accepts(answer):
    check_bounded_map(answer)


# ---------------------------------------------------------------------------------------
# Exercise 2: first_success(executor, fetch, mirrors)
# ---------------------------------------------------------------------------------------

# --- right answers ----------------------------------------------------------------------


def right_as_completed(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    try:
        for future in as_completed(futures, timeout=30):
            if future.exception() is None:
                return futures[future], future.result()
        return None
    finally:
        for future in futures:
            future.cancel()


def right_event_callbacks(executor, fetch, mirrors):
    """Done-callbacks put successes on a queue; a count of failures ends the wait."""
    answers = queue.Queue()
    futures = []
    for name in mirrors:
        future = executor.submit(fetch, name)
        future.add_done_callback(
            lambda f, name=name: answers.put(
                None if f.cancelled() or f.exception() is not None else (name, f.result())
            )
        )
        futures.append(future)
    try:
        for _ in futures:
            answer = answers.get(timeout=30)
            if answer is not None:
                return answer
        return None
    finally:
        for future in futures:
            future.cancel()


def right_wait_loop(executor, fetch, mirrors):
    names = {}
    for name in list(mirrors):
        names[executor.submit(fetch, name)] = name
    pending = set(names)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            try:
                data = future.result()
            except Exception:
                continue
            for other in pending:
                other.cancel()
            return names[future], data
    return None


# --- wrong answers ----------------------------------------------------------------------


def wrong_first_completed_even_failed(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    done, pending = wait(futures, timeout=30, return_when=FIRST_COMPLETED)
    for f in pending:
        f.cancel()
    future = done.pop()
    try:
        return futures[future], future.result()
    except Exception:
        return None


def wrong_in_input_order(executor, fetch, mirrors):
    futures = [executor.submit(fetch, name) for name in mirrors]
    try:
        for name, future in zip(mirrors, futures, strict=True):
            try:
                return name, future.result(timeout=30)
            except Exception:
                continue
        return None
    finally:
        for f in futures:
            f.cancel()


def wrong_never_cancels(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    for future in as_completed(futures, timeout=30):
        if future.exception() is None:
            return futures[future], future.result()
    return None


def wrong_shuts_down_executor(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    for future in as_completed(futures, timeout=30):
        if future.exception() is None:
            executor.shutdown(wait=False, cancel_futures=True)
            return futures[future], future.result()
    return None


def wrong_waits_for_all(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    order = [f for f in as_completed(futures, timeout=30)]
    for future in order:
        if future.exception() is None:
            return futures[future], future.result()
    return None


def wrong_serial_in_caller(executor, fetch, mirrors):  # noqa: F811 (another exercise's)
    for name in mirrors:
        try:
            return name, fetch(name)
        except Exception:
            continue
    return None


def wrong_one_at_a_time(executor, fetch, mirrors):  # noqa: F811 (another exercise's)
    for name in mirrors:
        try:
            return name, executor.submit(fetch, name).result(timeout=30)
        except Exception:
            continue
    return None


def wrong_catches_only_oserror(executor, fetch, mirrors):
    futures = {executor.submit(fetch, name): name for name in mirrors}
    try:
        for future in as_completed(futures, timeout=30):
            try:
                return futures[future], future.result()
            except OSError:
                continue
        return None
    finally:
        for f in futures:
            f.cancel()


def wrong_returns_data_only(executor, fetch, mirrors):
    answer = right_as_completed(executor, fetch, mirrors)
    return None if answer is None else answer[1]


def wrong_all_fail_raises(executor, fetch, mirrors):
    answer = right_as_completed(executor, fetch, mirrors)
    if answer is None:
        raise RuntimeError("every mirror failed")
    return answer


def wrong_name_by_completion_position(executor, fetch, mirrors):
    """Names the mirror by how many futures had completed, not by which one succeeded."""
    futures = [executor.submit(fetch, name) for name in mirrors]
    try:
        for position, future in enumerate(as_completed(futures, timeout=30)):
            if future.exception() is None:
                return mirrors[position], future.result()
        return None
    finally:
        for f in futures:
            f.cancel()


def wrong_first_success_not_first(executor, fetch, mirrors):
    """Waits for everything, then returns the success of the first mirror in the list."""
    futures = [executor.submit(fetch, name) for name in mirrors]
    wait(futures, timeout=30)
    for name, future in zip(mirrors, futures, strict=True):
        if future.exception() is None:
            return name, future.result()
    return None


def wrong_all_fail_returns_tuple(executor, fetch, mirrors):
    return right_as_completed(executor, fetch, mirrors) or (None, None)


FIRST_SUCCESS_WRONG = {
    "first-completed-even-failed": wrong_first_completed_even_failed,
    "in-input-order": wrong_in_input_order,
    "never-cancels": wrong_never_cancels,
    "shuts-down-callers-executor": wrong_shuts_down_executor,
    "waits-for-all": wrong_waits_for_all,
    "serial-in-caller": wrong_serial_in_caller,
    "one-at-a-time": wrong_one_at_a_time,
    "catches-only-oserror": wrong_catches_only_oserror,
    "returns-data-only": wrong_returns_data_only,
    "all-fail-raises": wrong_all_fail_raises,
    "name-by-completion-position": wrong_name_by_completion_position,
    "waits-then-first-in-list": wrong_first_success_not_first,
    "all-fail-none-none": wrong_all_fail_returns_tuple,
}
FIRST_SUCCESS_RIGHT = {
    "as-completed-cancel": right_as_completed,
    "callbacks-queue": right_event_callbacks,
    "wait-loop": right_wait_loop,
}


@pytest.mark.parametrize("answer", FIRST_SUCCESS_WRONG.values(), ids=FIRST_SUCCESS_WRONG.keys())
def test_first_success_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check_first_success(answer)


@pytest.mark.parametrize("answer", FIRST_SUCCESS_RIGHT.values(), ids=FIRST_SUCCESS_RIGHT.keys())
def test_first_success_accepts(answer):
    check_first_success(answer)
