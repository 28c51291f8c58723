"""The chapter 00 and 01 exercise checks pass right answers and fail wrong ones."""

import multiprocessing
import time

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.processes import check_exit_codes, check_run_with_deadline
from helpers.checks.welcome import JOBS, check_threads_or_processes

RIGHT_CODES = {
    "returns 42": 0,
    "calls sys.exit()": 0,
    "calls sys.exit('bye')": 1,
    "calls sys.exit(300)": 44,
}


def right_deadline(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(timeout=max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()
    return [p.exitcode for p in procs]


def timeout_per_process(jobs, seconds):  # waits up to `seconds` for each late process
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=seconds)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()
    return [p.exitcode for p in procs]


def never_terminates(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(timeout=max(0, deadline - time.monotonic()))
    return [p.exitcode for p in procs]


def terminates_without_join(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    time.sleep(seconds)
    for p in procs:
        if p.is_alive():
            p.terminate()
    return [p.exitcode for p in procs]


def joins_without_timeout(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]


def sorted_codes(jobs, seconds):
    return sorted(right_deadline(jobs, seconds))


def test_run_with_deadline_right_answer_passes(capsys):
    check_run_with_deadline(right_deadline)
    assert capsys.readouterr().out.startswith("Correct:")
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda jobs, seconds: None, "returned None"),
        (lambda jobs, seconds: [0] * len(jobs), "started for"),
        (timeout_per_process, "one deadline is shared"),
        (never_terminates, "terminate()"),
        (terminates_without_join, "never joined"),
        (sorted_codes, "in the order of the jobs"),
    ],
)
def test_run_with_deadline_wrong_answers_fail(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_run_with_deadline(wrong)
    assert hint in str(info.value)
    assert multiprocessing.active_children() == []  # the check left nothing running


def test_run_with_deadline_never_hangs():
    start = time.monotonic()
    with pytest.raises(ExerciseFailed, match="still waiting after 3 s"):
        check_run_with_deadline(joins_without_timeout, timeout=3)
    assert time.monotonic() - start < 10
    assert multiprocessing.active_children() == []


def test_run_with_deadline_fails_fast_on_the_skeleton():
    start = time.monotonic()
    with pytest.raises(ExerciseFailed, match="returned None"):
        check_run_with_deadline(lambda jobs, seconds: None)
    assert time.monotonic() - start < 1


def test_exit_codes_right_answer_passes(capsys):
    check_exit_codes(dict(RIGHT_CODES))
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "case, wrong, hint",
    [
        ("returns 42", 42, "return value"),
        ("calls sys.exit()", None, "predict an int"),
        ("calls sys.exit('bye')", 0, "non-integer"),
        ("calls sys.exit(300)", 300, "n & 0xFF"),
    ],
)
def test_exit_codes_wrong_answers_fail(case, wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_exit_codes({**RIGHT_CODES, case: wrong})


def test_exit_codes_rejects_missing_and_unknown_cases():
    with pytest.raises(ExerciseFailed, match="missing"):
        check_exit_codes({})
    with pytest.raises(ExerciseFailed, match="not one of the cases"):
        check_exit_codes({**RIGHT_CODES, "explodes": 1})
    with pytest.raises(ExerciseFailed, match="must be a dict"):
        check_exit_codes([0, 0, 1, 44])


def test_threads_or_processes():
    right = {job: answer for job, (answer, _) in JOBS.items()}
    check_threads_or_processes(right)
    with pytest.raises(ExerciseFailed, match="download 50 web pages"):
        check_threads_or_processes({**right, "download 50 web pages": "processes"})
    with pytest.raises(ExerciseFailed, match="must be 'threads' or 'processes'"):
        check_threads_or_processes({**right, "download 50 web pages": None})
    with pytest.raises(ExerciseFailed, match="missing"):
        check_threads_or_processes({})
    with pytest.raises(ExerciseFailed, match="must be a dict"):
        check_threads_or_processes(None)
