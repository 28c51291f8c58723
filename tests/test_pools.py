"""Unit tests for chapter 02's workers (helpers.pools) and exercise checks."""

import math
import multiprocessing
import os

import pytest

from helpers import pools, timeline
from helpers.checks import ExerciseFailed
from helpers.checks.pools import BATCH, check_pick_chunksize, check_run_batch


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


# --- checks -----------------------------------------------------------------


def right_batch(values):
    results, errors = {}, {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pending = {v: pool.apply_async(pools.checked_sqrt, (v,)) for v in values}
        for v, handle in pending.items():
            try:
                results[v] = handle.get(timeout=30)
            except ValueError as exc:
                errors[v] = exc
    return results, errors


def test_check_run_batch_passes_the_right_answer(capsys):
    check_run_batch(right_batch)
    assert capsys.readouterr().out.startswith("Correct:")


def _good():
    return {v: math.sqrt(v) for v in BATCH if v >= 0}


def _bad():
    return {v: ValueError(f"bad {v}") for v in BATCH if v < 0}


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda values: None, "returned None"),
        (lambda values: ({}, {}), "errors is empty"),
        (lambda values: (_good(), {}), "get()"),  # errors never collected
        (lambda values: (_good(), {v: str(e) for v, e in _bad().items()}), "exception object"),
        (lambda values: ({}, _bad()), "every good input"),
        (lambda values: ({v: 0.0 for v in _good()}, _bad()), "expected"),
        (lambda values: [_good(), _bad()], "tuple"),
        (lambda values: (_good(), _bad()), "not in a worker"),  # computed in the parent
    ],
)
def test_check_run_batch_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_run_batch(wrong)
    assert hint in str(info.value)


def test_check_pick_chunksize_passes_the_right_answer(capsys):
    check_pick_chunksize(lambda n, w: max(1, math.ceil(n / (4 * w))))
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, w: 1, "more than 16 per worker"),
        (lambda n, w: n, "only 1 chunk"),
        (lambda n, w: n / (4 * w), "must be an int"),
        (lambda n, w: 0, "at least 1"),
        (lambda n, w: None, "must be an int"),
        (lambda n, w: max(1, n // w), "chunk(s) for"),
    ],
)
def test_check_pick_chunksize_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_pick_chunksize(wrong)
    assert hint in str(info.value)
