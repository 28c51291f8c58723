"""Checks for the exercises of chapter 08 (events and coordination)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import Any

from helpers.checks import (
    LearnerFunction,
    collect,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_bounded_baker", "check_task_worker"]


def _call_in_thread(func: Any, *args: Any) -> tuple[threading.Thread, list]:
    errors: list = []

    def run() -> None:
        try:
            func(*args)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _squares(results: Any, n: int, timeout: float) -> list:
    return collect(results, n, timeout)


def check_task_worker(func: Any, grace: float = 1.5) -> None:
    """Check ``worker(stop, tasks, results)``: squares every number from ``tasks`` into
    ``results``, keeps waiting while ``tasks`` is empty, and once ``stop`` is set (even
    while it waits for a task) puts ``"done"`` into ``results`` and returns."""
    require_function(func)
    # 1. In a thread: quick, and it shows exactly what the worker does and when.
    stop, tasks, results = threading.Event(), queue.Queue(), queue.Queue()
    for n in (1, 2, 3):
        tasks.put(n)
    thread, errors = _call_in_thread(func, stop, tasks, results)
    early = (
        f"{func.__name__} returned before stop was set: keep taking tasks until stop is set "
        "(an empty queue only means there is no work yet)"
    )
    time.sleep(0.3)
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    expect(thread.is_alive(), early)
    got = _squares(results, 3, timeout=2)
    expect(
        got == [1, 4, 9],
        f"for the tasks 1, 2, 3 the worker put {got} into results, expected [1, 4, 9]",
    )
    tasks.put(4)
    late = _squares(results, 1, timeout=2)
    expect(late == [16], f"a task put in later got {late}, expected [16]")
    time.sleep(0.5)  # the queue is empty again: the worker must keep waiting for work
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    expect(thread.is_alive(), early)
    extra = collect(results, 1, timeout=0)
    if extra:
        fail(f"{func.__name__} put {extra[0]!r} into results before stop was set")
    stop.set()  # while the worker waits for a task that never comes
    thread.join(timeout=grace)
    if thread.is_alive():
        for _ in range(3):  # unblock a get() that waits for ever, so the thread can end
            tasks.put(0)
        fail(
            f"{func.__name__} was still running {grace} s after stop was set while it waited "
            "for a task: a get() without a timeout never looks at stop again. Wait with "
            "tasks.get(timeout=...) and catch queue.Empty"
        )
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    try:
        report = results.get_nowait()
    except queue.Empty:
        fail('after stop was set, put "done" into results before returning')
    expect(report == "done", f'expected "done" in results, got {report!r}')

    # 2. In a real process: it must end by itself with exit code 0.
    stop, tasks, results = multiprocessing.Event(), multiprocessing.Queue(), multiprocessing.Queue()
    for n in (5, 6):
        tasks.put(n)
    p = multiprocessing.Process(target=LearnerFunction(func), args=(stop, tasks, results))
    p.start()
    got = _squares(results, 2, timeout=30)
    stop.set()
    done = _squares(results, 1, timeout=10 + grace)
    stuck = stop_processes([p], grace + 5)
    expect(not stuck, f"the process was still running {grace + 5} s after stop was set")
    expect(got == [25, 36], f"the process put {got} into results, expected [25, 36]")
    expect(done == ["done"], f'the process reported {done}, expected ["done"]')
    expect(p.exitcode == 0, f"the process exited with code {p.exitcode}, expected 0")
    passed("the worker did every task, waited while there was none, and stopped when told.")


class _Count:
    """Stands in for ``Value("i", 0, lock=False)`` in the thread part of a check."""

    def __init__(self, value: int = 0) -> None:
        self.value = value


def _bake_twice(bake: Any, shelf: Any, loaves: Any, capacity: int, reports: Any) -> None:
    """Child process of ``check_bounded_baker``: bake two loaves, report after each."""
    for n in (1, 2):
        bake(shelf, loaves, capacity)
        reports.put(n)


def check_bounded_baker(func: Any) -> None:
    """Check ``bake(shelf, loaves, capacity)``: adds one loaf, but waits (under ``shelf``)
    while ``capacity`` loaves are on the shelf, and wakes waiting customers."""
    require_function(func)
    shelf, loaves = threading.Condition(), _Count()

    def bake_in_thread() -> tuple[threading.Thread, list]:
        return _call_in_thread(func, shelf, loaves, 2)

    def raised(errors: list) -> None:
        if errors:
            hint = f"{func.__name__} raised {errors[0]!r}"
            if isinstance(errors[0], RuntimeError) and "lock" in str(errors[0]):
                hint += ": wait and notify inside `with shelf:`"
            fail(hint)

    # 1. Room on the shelf: two loaves go on at once.
    for n in (1, 2):
        thread, errors = bake_in_thread()
        thread.join(timeout=1)
        raised(errors)
        expect(not thread.is_alive(), f"{func.__name__} waited although the shelf had room")
        expect(loaves.value == n, f"after {n} call(s) the shelf held {loaves.value} loaves")
    # 2. Full shelf: the third must wait.
    thread, errors = bake_in_thread()
    time.sleep(0.3)
    raised(errors)
    expect(
        thread.is_alive() and loaves.value == 2,
        f"{func.__name__} put a loaf on a full shelf ({loaves.value} loaves, capacity 2): wait "
        "with shelf.wait_for(...) until loaves.value < capacity",
    )
    # 3. A customer takes a loaf and notifies: the waiting baker goes on.
    with shelf:
        loaves.value -= 1
        shelf.notify_all()
    thread.join(timeout=1)
    if thread.is_alive():
        for _ in range(20):  # let a baker stuck in wait() go, so its thread can end
            with shelf:
                loaves.value = 0
                shelf.notify_all()
            time.sleep(0.05)
        fail(
            f"{func.__name__} kept waiting after a customer took a loaf and notified: wait with "
            "shelf.wait_for(lambda: loaves.value < capacity) so that it re-checks when woken"
        )
    raised(errors)
    expect(loaves.value == 2, f"the shelf held {loaves.value} loaves, expected 2")
    # 4. A waiting customer is woken by the new loaf.
    loaves.value = 0
    woken: list[float] = []

    def customer() -> None:
        started = time.perf_counter()
        with shelf:
            shelf.wait_for(lambda: loaves.value > 0, timeout=1.5)
        woken.append(time.perf_counter() - started)

    waiting = threading.Thread(target=customer, daemon=True)
    waiting.start()
    time.sleep(0.1)
    thread, errors = bake_in_thread()
    thread.join(timeout=1)
    waiting.join(timeout=3)
    raised(errors)
    expect(
        bool(woken) and woken[0] < 1.0,
        "a customer waiting for a loaf was not woken when it was baked: call "
        "shelf.notify_all() after adding the loaf, still inside `with shelf:`",
    )

    # 5. In a real process, with a multiprocessing Condition and Value.
    shelf_p = multiprocessing.Condition()
    loaves_p = multiprocessing.Value("i", 0, lock=False)
    reports = multiprocessing.Queue()
    p = multiprocessing.Process(
        target=_bake_twice, args=(LearnerFunction(func), shelf_p, loaves_p, 1, reports)
    )
    p.start()
    first = collect(reports, 1, timeout=30)
    time.sleep(0.3)
    second_early = collect(reports, 1, timeout=0)
    with shelf_p:
        loaves_p.value -= 1
        shelf_p.notify_all()
    second = collect(reports, 1, timeout=10)
    stuck = stop_processes([p], 10)
    expect(first == [1], "the process never finished baking its first loaf")
    expect(not second_early, "the process put a second loaf on a full shelf (capacity 1)")
    expect(
        not stuck and second == [2], "the process never baked its second loaf once there was room"
    )
    expect(p.exitcode == 0, f"the process exited with code {p.exitcode}, expected 0")
    passed("the baker waits while the shelf is full, and wakes the customers after each loaf.")
