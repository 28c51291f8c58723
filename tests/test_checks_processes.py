"""The chapter 00 and 01 exercise checks pass right answers and fail wrong ones."""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.connection import wait

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.processes import check_first_success, check_run_with_deadline
from helpers.checks.welcome import check_download_and_parse

# ---- chapter 01, exercise 1: run_with_deadline


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


def ignores_seconds(jobs, seconds):  # sleeps 1 s, then stops everything
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    time.sleep(1)
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def always_sleeps_the_deadline(jobs, seconds):  # waits `seconds` even when all are done
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    time.sleep(seconds)
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def joins_without_timeout(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]


def sorted_codes(jobs, seconds):
    return sorted(right_deadline(jobs, seconds), key=lambda c: (c is None, c))


def test_run_with_deadline_right_answer_passes(capsys):
    check_run_with_deadline(right_deadline)
    assert capsys.readouterr().out.startswith("Correct:")
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda jobs, seconds: None, "started for"),
        (lambda jobs, seconds: [0] * len(jobs), "started for"),
        (timeout_per_process, "one deadline is shared"),
        (never_terminates, "terminate()"),
        (terminates_without_join, "never joined"),
        (sorted_codes, "in the order of the jobs"),
        (ignores_seconds, "give them all the time"),
        (always_sleeps_the_deadline, "don't wait longer"),
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
    with pytest.raises(ExerciseFailed, match="0 processes were started"):
        check_run_with_deadline(lambda jobs, seconds: None)
    assert time.monotonic() - start < 1


# ---- chapter 01, exercise 2: first_success


def right_first_success(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    winner = None
    running = list(procs)
    while running and winner is None:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for sentinel in wait([p.sentinel for p in running], timeout=left):
            p = next(p for p in running if p.sentinel == sentinel)
            p.join()
            running.remove(p)
            if p.exitcode == 0 and winner is None:
                winner = procs.index(p)
    for p in running:
        p.terminate()
    for p in procs:
        p.join()
    return winner


def polls_with_sleep(jobs, seconds):  # right too: polls, but sleeps between looks
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    winner = None
    while winner is None and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if p.exitcode == 0:
                winner = i
                break
        if all(p.exitcode is not None for p in procs):
            break
        time.sleep(0.02)
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return winner


def busy_polls(jobs, seconds):  # right answer, but keeps a CPU busy
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    winner = None
    while winner is None and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if not p.is_alive() and p.exitcode == 0:
                winner = i
                break
        if all(not p.is_alive() for p in procs):
            break
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return winner


def first_to_end(jobs, seconds):  # takes the first child that ends, even if it failed
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    ready = wait([p.sentinel for p in procs], timeout=seconds)
    winner = next((i for i, p in enumerate(procs) if p.sentinel in ready), None)
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return winner


def joins_in_order(jobs, seconds):  # one deadline, but waits for the children in order
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + seconds
    winner = None
    for i, p in enumerate(procs):
        p.join(timeout=max(0, deadline - time.monotonic()))
        if p.exitcode == 0:
            winner = i
            break
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return winner


def no_terminate(jobs, seconds):
    procs = [multiprocessing.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    ready = wait([p.sentinel for p in procs], timeout=seconds)
    return next((i for i, p in enumerate(procs) if p.sentinel in ready), None)


def test_first_success_right_answers_pass(capsys):
    check_first_success(right_first_success)
    check_first_success(polls_with_sleep)
    assert capsys.readouterr().out.count("Correct:") == 2
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda jobs, seconds: None, "started for"),
        (first_to_end, "Keep waiting"),
        (joins_in_order, "first to exit with 0"),
        (busy_polls, "CPU time"),
        (no_terminate, "still running"),
    ],
)
def test_first_success_wrong_answers_fail(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_first_success(wrong)
    assert hint in str(info.value)
    assert multiprocessing.active_children() == []


# ---- chapter 00, exercise 1: download_and_parse


def right_download_and_parse(urls, download, parse):
    with ThreadPoolExecutor(8) as threads, ProcessPoolExecutor(2) as procs:
        return list(procs.map(parse, threads.map(download, urls)))


def processes_only(urls, download, parse):  # wrong: the text asks for threads to wait in
    with ProcessPoolExecutor(4) as procs:
        pages = list(procs.map(download, urls))
        return list(procs.map(parse, pages))


def serial(urls, download, parse):
    return [parse(download(url)) for url in urls]


def threads_only(urls, download, parse):
    with ThreadPoolExecutor(8) as threads:
        return list(threads.map(parse, threads.map(download, urls)))


def one_parser(urls, download, parse):
    with ThreadPoolExecutor(8) as threads, ProcessPoolExecutor(1) as procs:
        return list(procs.map(parse, threads.map(download, urls)))


_KEPT = []


def never_shut_down(urls, download, parse):
    procs = ProcessPoolExecutor(2)
    _KEPT.append(procs)  # still referenced: its workers keep running
    with ThreadPoolExecutor(8) as threads:
        return list(procs.map(parse, threads.map(download, urls)))


def unordered(urls, download, parse):
    return list(reversed(right_download_and_parse(urls, download, parse)))


def test_download_and_parse_right_answers_pass(capsys):
    check_download_and_parse(right_download_and_parse)
    assert capsys.readouterr().out.count("Correct:") == 1


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda urls, download, parse: None, "returned None"),
        (serial, "one after another"),
        (threads_only, "ran in this process"),
        (one_parser, "at least two worker processes"),
        (processes_only, "download() ran in another process"),
        (never_shut_down, "still running"),
        (unordered, "in the order of urls"),
    ],
)
def test_download_and_parse_wrong_answers_fail(wrong, hint):
    try:
        with pytest.raises(ExerciseFailed) as info:
            check_download_and_parse(wrong)
        assert hint in str(info.value)
    finally:
        while _KEPT:
            _KEPT.pop().shutdown(cancel_futures=True)
