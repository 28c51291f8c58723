"""Red team for chapter 01's exercises (a deadline for a batch; the first mirror that has the
file): wrong answers and unusual right ones, each run through the real check as the notebook
calls it. A wrong answer must get ExerciseFailed, a right one must pass."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
import time
from multiprocessing.connection import wait

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.processes import check_first_success, check_run_with_deadline

_leaked = []


def _start(jobs, daemon=None):
    procs = [multiprocessing.Process(target=t, args=a, daemon=daemon) for t, a in jobs]
    for p in procs:
        p.start()
    _leaked.extend(procs)
    return procs


# ======================================================= exercise 1: run_with_deadline
# ---------------------------------------------------------------- wrong answers


def d_skeleton(jobs, seconds):
    return None


def d_serial(jobs, seconds):  # one at a time, each with its own deadline
    codes = []
    for t, a in jobs:
        p = multiprocessing.Process(target=t, args=a)
        p.start()
        _leaked.append(p)
        p.join(seconds)
        if p.is_alive():
            p.terminate()
            p.join()
        codes.append(p.exitcode)
    return codes


def d_per_child_timeout(jobs, seconds):  # join(seconds) each: n * seconds in all
    procs = _start(jobs)
    for p in procs:
        p.join(seconds)
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def d_sleep_full_deadline(jobs, seconds):  # waits the whole deadline even if all are done
    procs = _start(jobs)
    time.sleep(seconds)
    for p in procs:
        p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def d_no_join_after_terminate(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    return [p.exitcode for p in procs]


def d_kill(jobs, seconds):  # kill() instead of terminate()
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()
    return [p.exitcode for p in procs]


def d_half_time(jobs, seconds):  # cuts the children short
    procs = _start(jobs)
    deadline = time.monotonic() + seconds / 2
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def d_completion_order(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    codes, pending = [], list(procs)
    while pending and time.monotonic() < deadline:
        for p in wait([p.sentinel for p in pending], deadline - time.monotonic()):
            done = next(q for q in pending if q.sentinel == p)
            done.join()
            codes.append(done.exitcode)
            pending.remove(done)
    for p in pending:
        p.terminate()
        p.join()
        codes.append(p.exitcode)
    return codes


def d_hardcoded_codes(jobs, seconds):  # right timing, invented exit codes
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    codes = []
    for p in procs:
        if p.is_alive():
            p.terminate()
            codes.append(-signal.SIGTERM)
        else:
            codes.append(0)
        p.join()
    return codes


def d_join_no_timeout(jobs, seconds):  # never enforces the deadline (30 s children)
    procs = _start(jobs)
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]


def d_daemon_abandon(jobs, seconds):  # daemons left running past the deadline
    procs = _start(jobs, daemon=True)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    return [p.exitcode if p.exitcode is not None else -signal.SIGTERM for p in procs]


def d_deadline_before_start(jobs, seconds):  # the clock starts before the children do
    deadline = time.monotonic() + seconds
    procs = [multiprocessing.Process(target=t, args=a) for t, a in jobs]
    for p in procs:
        time.sleep(seconds / max(1, len(procs)))  # slow "setup" between starts
        p.start()
        _leaked.append(p)
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def d_tuple_result(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return tuple(p.exitcode for p in procs)


# ---------------------------------------------------------------- right answers


def d_shared_deadline(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    return [p.exitcode for p in procs]


def d_sentinels(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: p for p in procs}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for s in wait(list(pending), left):
            pending.pop(s).join()
    for p in pending.values():
        p.terminate()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]


def d_polling_spawn_ctx(jobs, seconds):  # spawn context, sleep-polling, terminate everyone
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=t, args=a) for t, a in jobs]
    for p in procs:
        p.start()
    _leaked.extend(procs)
    t0 = time.perf_counter()
    while any(p.is_alive() for p in procs) and time.perf_counter() - t0 < seconds:
        time.sleep(0.005)
    for p in procs:
        p.terminate()  # no effect on a child that has ended
        p.join()
    return list(map(lambda p: p.exitcode, procs))


def d_threads_join(jobs, seconds):  # a thread joins each child; main joins the threads
    procs = _start(jobs)
    threads = [threading.Thread(target=p.join) for p in procs]
    for t in threads:
        t.start()
    end = time.monotonic() + seconds
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    for t in threads:
        t.join()
    return [p.exitcode for p in procs]


# ======================================================= exercise 2: first_success
# ---------------------------------------------------------------- wrong answers


def f_skeleton(jobs, seconds):
    return None


def _stop_all(procs):
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join()


def f_first_to_end(jobs, seconds):  # ignores the exit code
    procs = _start(jobs)
    ready = wait([p.sentinel for p in procs], seconds)
    result = next((i for i, p in enumerate(procs) if p.sentinel in ready), None)
    _stop_all(procs)
    return result


def f_wait_all_lowest(jobs, seconds):  # waits for everyone, then lowest index with 0
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(max(0, deadline - time.monotonic()))
    _stop_all(procs)
    return next((i for i, p in enumerate(procs) if p.exitcode == 0), None)


def f_busy_poll(jobs, seconds):  # spins a CPU
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    result = None
    while result is None and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if p.exitcode == 0:
                result = i
                break
    _stop_all(procs)
    return result


def f_no_terminate(jobs, seconds):  # leaves the losers running
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    while pending and time.monotonic() < deadline:
        for s in wait(list(pending), max(0, deadline - time.monotonic())):
            i = pending.pop(s)
            procs[i].join()
            if procs[i].exitcode == 0:
                return i
    return None


def f_no_deadline(jobs, seconds):  # waits forever when nobody succeeds
    procs = _start(jobs)
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    result = None
    while pending and result is None:
        for s in wait(list(pending), 60):
            i = pending.pop(s)
            procs[i].join()
            if procs[i].exitcode == 0:
                result = i
                break
    _stop_all(procs)
    return result


def f_gives_up_on_failure(jobs, seconds):  # the first child to end decides
    procs = _start(jobs)
    ready = wait([p.sentinel for p in procs], seconds)
    first = next((i for i, p in enumerate(procs) if p.sentinel in ready), None)
    if first is not None:
        procs[first].join()
    result = first if first is not None and procs[first].exitcode == 0 else None
    _stop_all(procs)
    return result


def f_terminate_no_join(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    result = None
    while pending and result is None and time.monotonic() < deadline:
        for s in wait(list(pending), max(0, deadline - time.monotonic())):
            i = pending.pop(s)
            procs[i].join()
            if procs[i].exitcode == 0:
                result = i
                break
    for p in procs:
        p.terminate()
    return result


def f_sleep_then_look(jobs, seconds):  # sleeps the whole deadline
    procs = _start(jobs)
    time.sleep(seconds)
    for p in procs:
        p.join(0)
    result = next((i for i, p in enumerate(procs) if p.exitcode == 0), None)
    _stop_all(procs)
    return result


def f_one_based(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    result = None
    while pending and result is None and time.monotonic() < deadline:
        for s in wait(list(pending), max(0, deadline - time.monotonic())):
            i = pending.pop(s)
            procs[i].join()
            if procs[i].exitcode == 0:
                result = i + 1
                break
    _stop_all(procs)
    return result


def f_none_is_success(jobs, seconds):  # `not p.exitcode` is True for a running child too
    procs = _start(jobs)
    ready = wait([p.sentinel for p in procs], seconds)
    result = None
    if ready:
        for p in procs:
            p.join(0)
        result = next((i for i, p in enumerate(procs) if not p.exitcode), None)
    _stop_all(procs)
    return result


def f_returns_process(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: p for p in procs}
    result = None
    while pending and result is None and time.monotonic() < deadline:
        for s in wait(list(pending), max(0, deadline - time.monotonic())):
            p = pending.pop(s)
            p.join()
            if p.exitcode == 0:
                result = p
                break
    _stop_all(procs)
    return result


def f_slow_poll(jobs, seconds):  # checks twice a second: answers late
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    result = None
    while result is None and time.monotonic() < deadline:
        time.sleep(0.5)
        result = next((i for i, p in enumerate(procs) if p.exitcode == 0), None)
    _stop_all(procs)
    return result


# ---------------------------------------------------------------- right answers


def f_sentinels(jobs, seconds):
    procs = _start(jobs)
    deadline = time.monotonic() + seconds
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    result = None
    try:
        while pending and result is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for s in wait(list(pending), left):
                i = pending.pop(s)
                procs[i].join()
                if procs[i].exitcode == 0:
                    result = i
                    break
    finally:
        _stop_all(procs)
    return result


def f_poll_sleep(jobs, seconds):  # polls with a short sleep
    procs = _start(jobs)
    t0 = time.monotonic()
    result = None
    while result is None and time.monotonic() - t0 < seconds:
        for i, p in enumerate(procs):
            if not p.is_alive() and p.exitcode == 0:
                result = i
                break
        else:
            if not any(p.is_alive() for p in procs):
                break
            time.sleep(0.005)
    _stop_all(procs)
    return result


def f_watcher_threads(jobs, seconds):  # a thread per child reports on a queue.Queue
    procs = _start(jobs)
    ended = queue.Queue()

    def watch(i):
        procs[i].join()
        ended.put(i)

    for i in range(len(procs)):
        threading.Thread(target=watch, args=(i,), daemon=True).start()
    deadline = time.monotonic() + seconds
    result = None
    for _ in procs:
        try:
            i = ended.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if procs[i].exitcode == 0:
            result = i
            break
    _stop_all(procs)
    return result


def f_waitpid_spawn(jobs, seconds):  # spawn context, os-level sentinel wait via a set
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=t, args=a) for t, a in jobs]
    for p in procs:
        p.start()
    _leaked.extend(procs)
    index = {p.sentinel: i for i, p in enumerate(procs)}
    end = time.perf_counter() + seconds
    found = None
    while index and found is None and (left := end - time.perf_counter()) > 0:
        for s in sorted(wait(index, left), key=index.get):
            procs[index[s]].join()
            if procs[index.pop(s)].exitcode == 0 and found is None:
                found = procs.index(next(p for p in procs if p.sentinel == s))
    for p in procs:
        p.kill() if p.is_alive() else None
        p.join()
    return found if found is None else int(found)


DEADLINE_WRONG = {
    "skeleton": d_skeleton,
    "serial": d_serial,
    "per-child-timeout": d_per_child_timeout,
    "sleeps-full-deadline": d_sleep_full_deadline,
    "no-join-after-terminate": d_no_join_after_terminate,
    "kill-not-terminate": d_kill,
    "half-the-time": d_half_time,
    "completion-order": d_completion_order,
    "hardcoded-codes": d_hardcoded_codes,
    "join-no-timeout": d_join_no_timeout,
    "daemons-abandoned": d_daemon_abandon,
    "clock-before-start": d_deadline_before_start,
    "tuple-not-list": d_tuple_result,
}
DEADLINE_RIGHT = {
    "shared-deadline": d_shared_deadline,
    "sentinels-wait": d_sentinels,
    "polling-spawn-terminate-all": d_polling_spawn_ctx,
    "watcher-threads": d_threads_join,
}
FIRST_WRONG = {
    "skeleton": f_skeleton,
    "first-to-end-any-code": f_first_to_end,
    "waits-for-all-lowest-index": f_wait_all_lowest,
    "busy-poll": f_busy_poll,
    "losers-left-running": f_no_terminate,
    "no-deadline": f_no_deadline,
    "first-failure-gives-up": f_gives_up_on_failure,
    "terminate-no-join": f_terminate_no_join,
    "sleeps-whole-deadline": f_sleep_then_look,
    "one-based-index": f_one_based,
    "none-exitcode-is-success": f_none_is_success,
    "returns-process": f_returns_process,
    "slow-poll": pytest.param(
        f_slow_poll,
        marks=pytest.mark.xfail(
            reason="known gap: the check allows 0.5 s between the winner's end and the return "
            "(a loaded machine needs the margin), so polling every 0.5 s passes",
            strict=False,
        ),
    ),
}
FIRST_RIGHT = {
    "sentinels-wait": f_sentinels,
    "poll-with-sleep": f_poll_sleep,
    "watcher-threads": f_watcher_threads,
    "spawn-sorted-sentinels-kill": f_waitpid_spawn,
}


@pytest.fixture(autouse=True)
def _clean_up():
    yield
    for p in _leaked:
        if p.is_alive():
            p.kill()
        p.join(10)
    _leaked.clear()


def _rejected(check, answer):
    t = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check(answer)
    assert time.perf_counter() - t < 20


@pytest.mark.parametrize("answer", list(DEADLINE_WRONG.values()), ids=list(DEADLINE_WRONG))
def test_deadline_wrong_rejected(answer):
    _rejected(check_run_with_deadline, answer)


@pytest.mark.parametrize("answer", list(DEADLINE_RIGHT.values()), ids=list(DEADLINE_RIGHT))
def test_deadline_right_accepted(answer):
    check_run_with_deadline(answer)


@pytest.mark.parametrize("answer", list(FIRST_WRONG.values()), ids=list(FIRST_WRONG))
def test_first_success_wrong_rejected(answer):
    _rejected(check_first_success, answer)


@pytest.mark.parametrize("answer", list(FIRST_RIGHT.values()), ids=list(FIRST_RIGHT))
def test_first_success_right_accepted(answer):
    check_first_success(answer)
