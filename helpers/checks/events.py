"""Checks for the exercises of chapter 08 (events and coordination)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import Any

from helpers import timeline
from helpers.checks import (
    LearnerFunction,
    collect,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_starting_gun", "check_task_worker"]


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


def check_starting_gun(func: Any, runners: int = 3, delay: float = 0.3) -> None:
    """Check ``runner(gun, name, sink)``: nothing is recorded before ``gun`` is set, then
    one span per runner, each starting after the gun."""
    require_function(func)
    # 1. Threads: they start at once, so a runner that doesn't wait is caught for sure.
    gun, sink = threading.Event(), []
    started = [_call_in_thread(func, gun, f"R{i}", sink) for i in range(runners)]
    time.sleep(delay)
    errors = [e for _, errs in started for e in errs]
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    expect(
        not sink,
        f"{len(sink)} runner(s) recorded a span before the gun was fired: gun.wait() first",
    )
    fired = timeline.now()
    gun.set()
    for thread, _ in started:
        thread.join(timeout=5)
    expect(
        not any(thread.is_alive() for thread, _ in started),
        "a runner was still running 5 s after the gun: record one short span, then return",
    )
    errors = [e for _, errs in started for e in errs]
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    expect(
        len(sink) == runners and all(isinstance(s, timeline.Span) for s in sink),
        f"expected {runners} spans in sink (one per runner), got {len(sink)}",
    )

    # 2. Processes.
    gun, spans = multiprocessing.Event(), multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=LearnerFunction(func), args=(gun, f"R{i}", spans))
        for i in range(runners)
    ]
    for p in procs:
        p.start()
    time.sleep(delay)
    fired = timeline.now()
    gun.set()
    got = collect(spans, len(procs), timeout=30)
    stop_processes(procs, 5 * len(procs))
    expect(len(got) == runners, f"only {len(got)} of {runners} processes delivered a span")
    early = [s.label for s in got if s.start < fired]
    expect(not early, f"{early} started before the gun was fired: gun.wait() first")
    passed(f"{runners} runners in {runners} processes, all started after the gun.")
