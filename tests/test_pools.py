"""Unit tests for chapter 02's workers (helpers.pools) and exercise checks."""

import math
import multiprocessing
import os

import pytest

from helpers import pools, timeline
from helpers.checks import ExerciseFailed
from helpers.checks.pools import check_first_failure, check_run_with_retries


def test_square_power_add_one():
    assert pools.square(3) == 9
    assert pools.square(1.5) == 2.25
    assert pools.power(2, 10) == 1024
    assert pools.add_one(41) == 42


@pytest.mark.parametrize(
    "call",
    [
        lambda: pools.square("3"),
        lambda: pools.square(True),
        lambda: pools.power(2, 1.5),
        lambda: pools.slow_square(2, "0.1"),
        lambda: pools.timed_sleep(1, 0.0),
        lambda: pools.timed_sleep_task(["a", 0.0]),
        lambda: pools.exit_abruptly("1"),
        lambda: pools.exit_abruptly(1, "0.1"),
        lambda: pools.load_table([("a", "b")]),
        lambda: pools.translate(3),
        lambda: pools.checked_sqrt(None),
    ],
)
def test_bad_arguments_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


def test_negative_seconds_raise_value_error():
    with pytest.raises(ValueError, match="seconds"):
        pools.slow_square(2, -1)


def test_checked_sqrt():
    assert pools.checked_sqrt(9) == 3.0
    with pytest.raises(ValueError, match="negative"):
        pools.checked_sqrt(-1)


def test_timed_sleep_returns_a_span_of_this_process():
    span = pools.timed_sleep("x", 0.02)
    assert isinstance(span, timeline.Span)
    assert span.label == "x" and span.pid == os.getpid() and span.duration >= 0.02
    assert pools.timed_sleep_task(("y", 0.0)).label == "y"


def test_whoami_and_slow_square_in_a_pool():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(pools.whoami, ()) != os.getpid()
        assert pool.map(pools.slow_square, [2, 3]) == [4, 9]


def test_exit_abruptly_ends_the_process():
    proc = multiprocessing.get_context("spawn").Process(target=pools.exit_abruptly, args=(3,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 3


def test_initializer_and_translate():
    pools._table = pools._loaded = None
    with pytest.raises(RuntimeError, match="initializer"):
        pools.translate("one")
    pools.load_table({"one": "un"})
    try:
        word, pid, loaded_at = pools.translate("one")
        assert (word, pid) == ("un", os.getpid()) and loaded_at > 0
        assert pools.translate("two")[0] == "?"
    finally:
        pools._table = pools._loaded = None


def test_logged_slow_and_flaky_sqrt(tmp_path):
    assert pools.logged_sqrt(9, str(tmp_path)) == 3.0
    assert (tmp_path / "task-9").exists()
    with pytest.raises(ValueError, match="folder"):
        pools.logged_sqrt(9, str(tmp_path / "missing"))
    assert pools.slow_sqrt(4, 0.0) == 2.0
    with pytest.raises(ValueError, match="negative"):
        pools.slow_sqrt(-4)  # at once, without sleeping
    with pytest.raises(ConnectionError):
        pools.flaky_sqrt(5, 2, 0.0)  # 5 % 3 == 2: attempts 1 and 2 fail
    assert pools.flaky_sqrt(5, 3, 0.0) == math.sqrt(5)
    root = pools.flaky_sqrt(9, 1, 0.01)
    assert root == 3.0 and isinstance(root, pools.Root) and root.pid == os.getpid()
    assert root.end - root.start >= 0.01
    import pickle

    copy = pickle.loads(pickle.dumps(root))
    assert (copy, copy.pid, copy.start, copy.end) == (root, root.pid, root.start, root.end)
    with pytest.raises(RuntimeError, match="set-up failed"):
        pools.failing_setup(str(tmp_path))
    assert (tmp_path / f"worker-{os.getpid()}").exists()
    with pytest.raises(ValueError, match="attempt"):
        pools.flaky_sqrt(9, 0)


def test_unloadable_pickles_but_does_not_unpickle():
    import pickle

    data = pickle.dumps(pools.unloadable())
    with pytest.raises(RuntimeError, match="unpickled"):
        pickle.loads(data)


# --- checks -----------------------------------------------------------------


def right_retries(values, attempts):
    results, errors = {}, {}
    todo = list(values)
    with multiprocessing.Pool(2) as pool:
        for attempt in range(1, attempts + 1):
            handles = {v: pool.apply_async(pools.flaky_sqrt, (v, attempt)) for v in todo}
            todo = []
            for v, handle in handles.items():
                try:
                    results[v] = handle.get(timeout=30)
                except ConnectionError as exc:
                    errors[v] = exc
                    todo.append(v)
                except ValueError as exc:
                    errors[v] = exc
            for v in results:
                errors.pop(v, None)
    return results, errors


def executor_retries(values, attempts):
    from concurrent.futures import ProcessPoolExecutor

    results, errors = {}, {}
    todo = list(values)
    with ProcessPoolExecutor(2) as ex:
        for attempt in range(1, attempts + 1):
            futures = {v: ex.submit(pools.flaky_sqrt, v, attempt) for v in todo}
            todo = []
            for v, fut in futures.items():
                try:
                    results[v] = fut.result(timeout=30)
                    errors.pop(v, None)
                except ConnectionError as exc:
                    errors[v] = exc
                    todo.append(v)
                except ValueError as exc:
                    errors[v] = exc
    return results, errors


def no_retry(values, attempts):
    return right_retries(values, 1)


def retries_forever(values, attempts):
    return right_retries(values, 5)


def in_the_parent(values, attempts):
    results, errors = {}, {}
    for v in values:
        for attempt in range(1, attempts + 1):
            try:
                results[v] = pools.flaky_sqrt(v, attempt)
                errors.pop(v, None)
                break
            except (ConnectionError, ValueError) as exc:
                errors[v] = exc
    return results, errors


def two_attempts(values, attempts):
    return right_retries(values, 2)


def one_call_at_a_time(values, attempts):
    results, errors = {}, {}
    with multiprocessing.Pool(2) as pool:
        for v in values:
            for attempt in range(1, attempts + 1):
                try:
                    results[v] = pool.apply(pools.flaky_sqrt, (v, attempt))
                    errors.pop(v, None)
                    break
                except ConnectionError as exc:
                    errors[v] = exc
                except ValueError as exc:
                    errors[v] = exc
                    break
    return results, errors


def serial_retries(values, attempts):
    results, errors = {}, {}
    with multiprocessing.Pool(2) as pool:
        first = {v: pool.apply_async(pools.flaky_sqrt, (v, 1)) for v in values}
        for v, handle in first.items():
            try:
                results[v] = handle.get(timeout=30)
            except ValueError as exc:
                errors[v] = exc
            except ConnectionError as exc:
                errors[v] = exc
                for attempt in range(2, attempts + 1):
                    try:
                        results[v] = pool.apply(pools.flaky_sqrt, (v, attempt))
                        del errors[v]
                        break
                    except ConnectionError as exc:
                        errors[v] = exc
    return results, errors


def pool_left_running(values, attempts):
    pool = multiprocessing.Pool(2)
    results, errors = {}, {}
    todo = list(values)
    for attempt in range(1, attempts + 1):
        handles = {v: pool.apply_async(pools.flaky_sqrt, (v, attempt)) for v in todo}
        todo = []
        for v, handle in handles.items():
            try:
                results[v] = handle.get(timeout=30)
                errors.pop(v, None)
            except ConnectionError as exc:
                errors[v] = exc
                todo.append(v)
            except ValueError as exc:
                errors[v] = exc
    return results, errors


def roots_in_the_parent(values, attempts):
    results, errors = right_retries(values, attempts)
    return {v: math.sqrt(v) for v in results}, errors


def retries_value_errors(values, attempts):
    results, errors = {}, {}
    todo = list(values)
    with multiprocessing.Pool(2) as pool:
        for attempt in range(1, attempts + 1):
            handles = {v: pool.apply_async(pools.flaky_sqrt, (v, attempt)) for v in todo}
            todo = []
            for v, handle in handles.items():
                try:
                    results[v] = handle.get(timeout=30)
                    errors.pop(v, None)
                except (ConnectionError, ValueError) as exc:
                    errors[v] = exc
                    todo.append(v)
    return results, errors


def first_error_kept(values, attempts):
    results, errors = {}, {}
    todo = list(values)
    with multiprocessing.Pool(2) as pool:
        for attempt in range(1, attempts + 1):
            handles = {v: pool.apply_async(pools.flaky_sqrt, (v, attempt)) for v in todo}
            todo = []
            for v, handle in handles.items():
                try:
                    results[v] = handle.get(timeout=30)
                    errors.pop(v, None)
                except ConnectionError as exc:
                    errors.setdefault(v, exc)
                    todo.append(v)
                except ValueError as exc:
                    errors[v] = exc
    return results, errors


def errors_as_text(values, attempts):
    results, errors = right_retries(values, attempts)
    return results, {v: str(e) for v, e in errors.items()}


@pytest.mark.parametrize("answer", [right_retries, executor_retries])
def test_check_run_with_retries_passes_right_answers(capsys, answer):
    check_run_with_retries(answer)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda values, attempts: None, "returned None"),
        (lambda values, attempts: [{}, {}], "tuple"),
        (no_retry, "submit them again"),
        (retries_forever, "stop retrying"),
        (in_the_parent, "in a worker"),
        (errors_as_text, "ValueError on every attempt"),
        (two_attempts, "attempts=1"),
        (retries_value_errors, "only a ConnectionError is worth another attempt"),
        (first_error_kept, "not the error of attempt"),
        (one_call_at_a_time, "in no run did two calls run at the same time"),
        (serial_retries, "the retries ran one after another in every run"),
        (pool_left_running, "still running"),
        (roots_in_the_parent, "not computed by flaky_sqrt in a worker"),
    ],
)
def test_check_run_with_retries_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_run_with_retries(wrong)
    assert hint in str(info.value)


def right_first_failure(values):
    with multiprocessing.Pool(2) as pool:
        results = pool.imap(pools.slow_sqrt, values)
        for index in range(len(values)):
            try:
                results.next(timeout=30)
            except ValueError as exc:
                return index, exc
    return None


def waits_for_all(values):
    with multiprocessing.Pool(2) as pool:
        try:
            pool.map(pools.slow_sqrt, values)
        except ValueError as exc:
            return next(i for i, v in enumerate(values) if v < 0), exc
    return None


def unordered(values):
    with multiprocessing.Pool(2) as pool:
        results = pool.imap_unordered(pools.slow_sqrt, values)
        for index in range(len(values)):
            try:
                results.next(timeout=30)
            except ValueError as exc:
                return index, exc
    return None


def first_failure_in_the_parent(values):
    for index, value in enumerate(values):
        try:
            pools.checked_sqrt(value)
        except ValueError as exc:
            return index, exc
    return None


def always_a_tuple(values):
    return right_first_failure(values) or ()


def chunked(values):
    with multiprocessing.Pool(2) as pool:
        results = pool.imap(pools.slow_sqrt, values, chunksize=2)
        for index in range(len(values)):
            try:
                next(results)
            except ValueError as exc:
                return index, exc
    return None


def looks_ahead(values):
    bad = [i for i, v in enumerate(values) if v < 0]
    if not bad:
        return None
    with multiprocessing.Pool(2) as pool:
        try:
            pool.apply_async(pools.slow_sqrt, (values[bad[0]],)).get(timeout=30)
        except ValueError as exc:
            return bad[0], exc


def never_stopped(values):
    pool = multiprocessing.Pool(2)
    results = pool.imap(pools.slow_sqrt, values)
    for index in range(len(values)):
        try:
            results.next(timeout=30)
        except ValueError as exc:
            return index, exc
    pool.close()
    pool.join()
    return None


def test_check_first_failure_passes_the_right_answer(capsys):
    check_first_failure(right_first_failure)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda values: None, "returned None"),
        (waits_for_all, "waited for (most of) the whole batch"),
        (unordered, "the index is 2"),
        (first_failure_in_the_parent, "not in a worker"),
        (always_a_tuple, "with no error, return None"),
        (chunked, "the chunk's first position"),
        (never_stopped, "still running"),
        (looks_ahead, "sooner than slow_sqrt(1) takes"),
    ],
)
def test_check_first_failure_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_first_failure(wrong)
    assert hint in str(info.value)


def test_checks_fail_fast_on_the_skeletons():
    import time

    start = time.monotonic()
    for check, skeleton in [
        (check_run_with_retries, lambda values, attempts: ({}, {})),
        (check_first_failure, lambda values: None),
    ]:
        with pytest.raises(ExerciseFailed):
            check(skeleton)
    assert time.monotonic() - start < 1
