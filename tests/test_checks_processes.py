"""The chapter 00 and 01 exercise checks pass right answers and fail wrong ones."""

import multiprocessing
import signal
import time

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.processes import check_exit_codes, check_run_downloads
from helpers.checks.welcome import JOBS, check_threads_or_processes
from helpers.processes import nap
from helpers.work import fake_download

RIGHT_CODES = {
    "returns 42": 0,
    "calls sys.exit()": 0,
    "calls sys.exit('bye')": 1,
    "is stopped with kill()": -signal.SIGKILL,
}


def right_downloads(urls, seconds):
    q = multiprocessing.Queue()
    t0 = time.perf_counter()
    procs = [
        multiprocessing.Process(target=fake_download, args=(u, seconds), kwargs={"sink": q})
        for u in urls
    ]
    for p in procs:
        p.start()
    spans = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join()
    return spans, time.perf_counter() - t0


def one_after_another(urls, seconds):
    q = multiprocessing.Queue()
    t0 = time.perf_counter()
    spans = []
    for u in urls:
        p = multiprocessing.Process(target=fake_download, args=(u, seconds), kwargs={"sink": q})
        p.start()
        spans.append(q.get(timeout=30))
        p.join()
    return spans, time.perf_counter() - t0


def clock_stopped_early(urls, seconds):
    q = multiprocessing.Queue()
    t0 = time.perf_counter()
    procs = [
        multiprocessing.Process(target=fake_download, args=(u, seconds), kwargs={"sink": q})
        for u in urls
    ]
    for p in procs:
        p.start()
    elapsed = time.perf_counter() - t0  # before anything finished
    spans = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join()
    return spans, elapsed


def in_the_parent(urls, seconds):
    t0 = time.perf_counter()
    spans = [fake_download(u, seconds) for u in urls]
    return spans, time.perf_counter() - t0


def missing_one(urls, seconds):
    spans, elapsed = right_downloads(urls, seconds)
    return spans[:-1], elapsed


LEFT_RUNNING = []


def leaves_one_running(urls, seconds):
    spans, elapsed = right_downloads(urls, seconds)
    straggler = multiprocessing.Process(target=nap, args=(30,))  # never joined
    straggler.start()
    LEFT_RUNNING.append(straggler)
    return spans, elapsed


def test_run_downloads_right_answer_passes(capsys):
    check_run_downloads(right_downloads)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda urls, seconds: None, "returned None"),
        (lambda urls, seconds: [], "pair"),
        (one_after_another, "one after another"),
        (clock_stopped_early, "stop the clock"),
        (in_the_parent, "notebook's own process"),
        (missing_one, "expected 3 spans"),
    ],
)
def test_run_downloads_wrong_answers_fail(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_run_downloads(wrong)


def test_run_downloads_stops_what_it_left_running():
    with pytest.raises(ExerciseFailed, match="join every process"):
        check_run_downloads(leaves_one_running)
    assert not LEFT_RUNNING[0].is_alive()  # the check stopped it
    assert multiprocessing.active_children() == []


def test_exit_codes_right_answer_passes(capsys):
    check_exit_codes(dict(RIGHT_CODES))
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "case, wrong, hint",
    [
        ("returns 42", 42, "return value"),
        ("calls sys.exit()", None, "predict an int"),
        ("calls sys.exit('bye')", 0, "non-integer"),
        ("is stopped with kill()", -signal.SIGTERM, "SIGKILL"),
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
        check_exit_codes([0, 0, 1, -9])


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
