"""Red team for chapter 08's exercises: answers meant to fool the checks, and odd right ones.

Every case runs the check exactly as the notebook's check cell calls it. A wrong answer must
get ``ExerciseFailed``; a right one must pass. The answers are module-level functions, as a
learner's notebook functions are; the checks run them in threads and in spawned processes.
"""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from helpers.checks import ExerciseFailed
from helpers.checks import events as check

# ---------------------------------------------------------------- Exercise 1: task worker


def w_skeleton(stop, tasks, results):
    number = tasks.get()
    results.put(number * number)


def w_spin_get_nowait(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get_nowait()
        except queue.Empty:
            continue
        results.put(number * number)
    results.put("done")


def w_blocking_get(stop, tasks, results):
    while not stop.is_set():
        number = tasks.get()  # blocks forever once the queue stays empty
        results.put(number * number)
    results.put("done")


def w_no_done(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        results.put(number * number)


def w_quits_when_idle(stop, tasks, results):
    # "an empty queue means no more work": wrong, it only means none yet
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.2)
        except queue.Empty:
            break
        results.put(number * number)
    results.put("done")


def w_doubles(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        results.put(number + number)  # right for 0 and 2 only
    results.put("done")


def w_strings(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        results.put(str(number * number))
    results.put("done")


def w_holds_results(stop, tasks, results):
    squares = []
    while not stop.is_set():
        try:
            squares.append(tasks.get(timeout=0.1) ** 2)
        except queue.Empty:
            continue
    for square in squares:  # everything arrives only after stop
        results.put(square)
    results.put("done")


def w_done_twice(stop, tasks, results):
    results.put("done")  # announces the end before doing anything
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        results.put(number * number)
    results.put("done")


def w_right_stop_wait_then_drain(stop, tasks, results):
    # Sleep on the stop event itself, then take whatever is there.
    while True:
        while True:
            try:
                number = tasks.get_nowait()
            except queue.Empty:
                break
            results.put(number * number)
        if stop.wait(0.05):
            break
    results.put("done")


def w_right_numpy(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(True, 0.25)
        except queue.Empty:
            continue
        results.put(np.square(np.int64(number)))  # a NumPy integer, equal to the square
    results.put("done")


def w_right_pow_try_finally(stop, tasks, results):
    try:
        while True:
            if stop.is_set():
                return
            try:
                results.put(pow(tasks.get(timeout=0.3), 2))
            except queue.Empty:
                pass
    finally:
        results.put("done")


WORKERS = [
    pytest.param(w_skeleton, False, id="skeleton"),
    pytest.param(w_spin_get_nowait, False, id="spin-get-nowait"),
    pytest.param(w_blocking_get, False, id="blocking-get-never-sees-stop"),
    pytest.param(w_no_done, False, id="no-done"),
    pytest.param(w_quits_when_idle, False, id="quits-when-idle"),
    pytest.param(w_doubles, False, id="doubles-not-squares"),
    pytest.param(w_strings, False, id="string-squares"),
    pytest.param(w_holds_results, False, id="results-only-after-stop"),
    pytest.param(w_done_twice, False, id="done-first"),
    pytest.param(w_right_stop_wait_then_drain, True, id="right-stop-wait-drain"),
    pytest.param(w_right_numpy, True, id="right-numpy-int"),
    pytest.param(w_right_pow_try_finally, True, id="right-try-finally"),
]


@pytest.mark.parametrize(("answer", "right"), WORKERS)
def test_task_worker(answer, right):
    if right:
        check.check_task_worker(answer)
    else:
        with pytest.raises(ExerciseFailed):
            check.check_task_worker(answer)


# ---------------------------------------------------------------- Exercise 2: bounded baker


def b_skeleton(shelf, loaves, capacity, timeout):
    loaves.value += 1
    return True


def b_notify_one(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
        loaves.value += 1
        shelf.notify()
        return True


def b_wait_no_recheck(shelf, loaves, capacity, timeout):
    with shelf:
        if loaves.value >= capacity:
            shelf.wait(timeout)  # woken by anyone: no second look at the shelf
            if loaves.value >= capacity:
                return False
        loaves.value += 1
        shelf.notify_all()
        return True


def b_wait_once_any_wakeup(shelf, loaves, capacity, timeout):
    with shelf:
        if loaves.value >= capacity:
            if not shelf.wait(timeout):
                return False
        loaves.value += 1  # may overfill: the wake-up was for someone else
        shelf.notify_all()
        return True


def b_ignores_timeout_result(shelf, loaves, capacity, timeout):
    with shelf:
        shelf.wait_for(lambda: loaves.value < capacity, timeout)
        loaves.value += 1
        shelf.notify_all()
        return True


def b_off_by_one(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value <= capacity, timeout):
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def b_no_timeout(shelf, loaves, capacity, timeout):
    with shelf:
        shelf.wait_for(lambda: loaves.value < capacity)
        loaves.value += 1
        shelf.notify_all()
        return True


def b_fixed_timeout(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, 0.3):
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def b_no_wait(shelf, loaves, capacity, timeout):
    with shelf:
        if loaves.value >= capacity:
            return False  # gives up at once
        loaves.value += 1
        shelf.notify_all()
        return True


def b_spins(shelf, loaves, capacity, timeout):
    deadline = time.monotonic() + timeout
    while True:
        with shelf:
            if loaves.value < capacity:
                loaves.value += 1
                shelf.notify_all()
                return True
        if time.monotonic() > deadline:
            return False


def b_check_then_act(shelf, loaves, capacity, timeout):
    deadline = time.monotonic() + timeout
    while loaves.value >= capacity:  # looks without the lock
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    time.sleep(0.01)  # (the gap in which another baker fills the last place)
    with shelf:
        loaves.value += 1
        shelf.notify_all()
    return True


def b_fills_up(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
        loaves.value = capacity  # fills every free place, not one
        shelf.notify_all()
        return True


def b_true_on_timeout(shelf, loaves, capacity, timeout):
    with shelf:
        if shelf.wait_for(lambda: loaves.value < capacity, timeout):
            loaves.value += 1
            shelf.notify_all()
        return True


def b_capacity_three(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < 3, timeout):
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def b_empties_on_timeout(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            loaves.value -= 1  # "makes room" by throwing a loaf away
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def b_adds_outside_lock(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
    loaves.value += 1  # after the lock is released: another baker saw the same free place
    with shelf:
        shelf.notify_all()
    return True


def b_none_on_timeout(shelf, loaves, capacity, timeout):
    with shelf:
        if shelf.wait_for(lambda: loaves.value < capacity, timeout):
            loaves.value += 1
            shelf.notify_all()
            return True
    # falls off the end: None, not False


def b_right_manual_loop(shelf, loaves, capacity, timeout):
    deadline = time.monotonic() + timeout
    with shelf:
        while loaves.value >= capacity:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            shelf.wait(remaining)
        loaves.value = loaves.value + 1
        shelf.notify_all()
    return True


def b_right_notify_first(shelf, loaves, capacity, timeout):
    # Notifying before the change is fine: the waiters need the lock we still hold.
    shelf.acquire()
    try:
        room = shelf.wait_for(lambda: capacity - loaves.value > 0, timeout=timeout)
        if room:
            shelf.notify_all()
            loaves.value += np.int64(1)
        return bool(room)
    finally:
        shelf.release()


def b_right_notify_many(shelf, loaves, capacity, timeout):
    with shelf:
        ok = shelf.wait_for(lambda: loaves.value < capacity, timeout)
        if ok:
            loaves.value += 1
            shelf.notify(1_000)  # more than anyone waiting: everyone
    return ok


BAKERS = [
    pytest.param(b_skeleton, False, id="skeleton"),
    pytest.param(b_notify_one, False, id="notify-one"),
    pytest.param(b_wait_no_recheck, False, id="wait-once-recheck-once"),
    pytest.param(b_wait_once_any_wakeup, False, id="wait-once-no-recheck"),
    pytest.param(b_ignores_timeout_result, False, id="adds-after-timeout"),
    pytest.param(b_off_by_one, False, id="off-by-one-capacity"),
    pytest.param(b_no_timeout, False, id="no-timeout"),
    pytest.param(b_fixed_timeout, False, id="hard-coded-timeout"),
    pytest.param(b_no_wait, False, id="never-waits"),
    pytest.param(b_spins, False, id="spins-on-lock"),
    pytest.param(b_check_then_act, False, id="check-then-act"),
    pytest.param(b_fills_up, False, id="fills-to-capacity"),
    pytest.param(b_true_on_timeout, False, id="true-on-timeout"),
    pytest.param(b_capacity_three, False, id="hard-coded-capacity"),
    pytest.param(b_empties_on_timeout, False, id="changes-shelf-on-timeout"),
    pytest.param(b_adds_outside_lock, False, id="adds-outside-lock"),
    pytest.param(b_none_on_timeout, False, id="none-on-timeout"),
    pytest.param(b_right_manual_loop, True, id="right-manual-wait-loop"),
    pytest.param(b_right_notify_first, True, id="right-notify-before-change-numpy"),
    pytest.param(b_right_notify_many, True, id="right-notify-n-large"),
]


@pytest.mark.parametrize(("answer", "right"), BAKERS)
def test_bounded_baker(answer, right):
    if right:
        check.check_bounded_baker(answer)
    else:
        with pytest.raises(ExerciseFailed):
            check.check_bounded_baker(answer)
