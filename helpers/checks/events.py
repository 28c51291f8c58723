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

__all__ = ["check_shutdown", "check_starting_gun"]


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


def check_shutdown(func: Any, running: float = 0.3, grace: float = 2.0) -> None:
    """Check ``worker(stop, results)``: keeps working until ``stop`` is set, then puts
    ``"done"`` into ``results`` and returns (exit code 0)."""
    require_function(func)
    # 1. In a thread: quick, and it shows exactly when the worker stops.
    stop, results = threading.Event(), queue.Queue()
    thread, errors = _call_in_thread(func, stop, results)
    time.sleep(running)
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    expect(
        thread.is_alive() and results.empty(),
        f"{func.__name__} finished (or reported) before stop was set: loop until stop.is_set()",
    )
    stop.set()
    thread.join(timeout=grace)
    expect(
        not thread.is_alive(),
        f"{func.__name__} was still running {grace} s after stop was set: check stop in the loop "
        "(and don't block without a timeout)",
    )
    expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
    try:
        report = results.get_nowait()
    except queue.Empty:
        fail('after stop was set, put "done" into results before returning')
    expect(report == "done", f'expected "done" in results, got {report!r}')

    # 2. In a real process: it must end by itself with exit code 0.
    stop, results = multiprocessing.Event(), multiprocessing.Queue()
    p = multiprocessing.Process(target=LearnerFunction(func), args=(stop, results))
    p.start()
    time.sleep(running)
    stop.set()
    try:
        report = results.get(timeout=10 + grace)
    except queue.Empty:
        report = None
    p.join(timeout=grace)
    if p.is_alive():
        p.terminate()
        p.join()
        fail(f"the process was still running {grace} s after stop was set")
    expect(report == "done", f'the process put {report!r} into results, expected "done"')
    expect(p.exitcode == 0, f"the process exited with code {p.exitcode}, expected 0")
    passed("the worker kept going until stop was set, then reported and exited with code 0.")


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
