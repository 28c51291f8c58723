"""Unit tests for chapter 03's workers (helpers.futures) and exercise checks."""

import math
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pytest

from helpers import futures
from helpers.checks import ExerciseFailed
from helpers.checks.futures import check_fastest, check_tally_outcome


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


def right_tally(future, tally):
    exc = future.exception()
    if exc is not None:
        tally["errors"].append(exc)
    else:
        tally["results"].append(future.result())


def test_check_tally_outcome_passes_the_right_answer(capsys):
    check_tally_outcome(right_tally)
    assert capsys.readouterr().out.startswith("Correct:")


def raises_on_failure(future, tally):
    tally["results"].append(future.result())


def ignores_failures(future, tally):
    if future.exception() is None:
        tally["results"].append(future.result())


def stores_messages(future, tally):
    if future.exception() is not None:
        tally["errors"].append(str(future.exception()))
    else:
        tally["results"].append(future.result())


def does_nothing(future, tally):
    pass


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (raises_on_failure, "only logs"),
        (ignores_failures, "tasks failed"),
        (stores_messages, "exceptions themselves"),
        (does_nothing, "tasks failed"),
    ],
)
def test_check_tally_outcome_fails_wrong_answers(wrong, hint, capfd):
    with pytest.raises(ExerciseFailed) as info:
        check_tally_outcome(wrong)
    assert hint in str(info.value)
    assert "Traceback" not in capfd.readouterr().err  # the check kept the callback's log quiet


def right_fastest(executor, mirrors):
    pending = [executor.submit(futures.fetch_from, m, s) for m, s in mirrors.items()]
    done, not_done = wait(pending, return_when=FIRST_COMPLETED)
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


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda executor, mirrors: None, "returned None"),
        (in_input_order, "input order"),
        (waits_for_all, "waited for every download"),
        (lambda executor, mirrors: "fast", "expected 'us'"),
    ],
)
def test_check_fastest_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_fastest(wrong)
    assert hint in str(info.value)


def test_tally_inputs_have_failures():
    from helpers.checks.futures import TALLY_INPUTS

    assert any(x < 0 for x in TALLY_INPUTS) and any(x >= 0 for x in TALLY_INPUTS)
    assert all(math.isfinite(x) for x in TALLY_INPUTS)
