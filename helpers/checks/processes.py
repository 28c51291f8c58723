"""Checks for the exercises in chapter 01 (processes and start methods)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any

from helpers import processes, timeline
from helpers.checks import expect, fail, passed, stop_processes

__all__ = ["EXIT_CASES", "check_run_downloads", "check_exit_codes", "measure_exit_codes"]

CHECK_URLS = ("https://example.org/x", "https://example.org/y", "https://example.org/z")
CHECK_SECONDS = 0.3


def check_run_downloads(run_downloads: Callable[..., Any]) -> None:
    """Check ``run_downloads(urls, seconds) -> (spans, elapsed)`` on three URLs.

    It must run one child process per URL, all at the same time, collect every span,
    and measure the elapsed time from before the first start to after the last download.
    """
    expect(callable(run_downloads), "pass the function itself: check_run_downloads(run_downloads)")
    result = run_downloads(list(CHECK_URLS), CHECK_SECONDS)
    expect(result is not None, "run_downloads returned None: return (spans, elapsed)")
    expect(
        isinstance(result, tuple) and len(result) == 2,
        f"run_downloads must return a pair (spans, elapsed), got {type(result).__name__}",
    )
    spans, elapsed = result
    expect(isinstance(spans, list), f"spans must be a list of spans, got {type(spans).__name__}")
    expect(
        all(isinstance(s, timeline.Span) for s in spans),
        "spans must hold what fake_download put on the queue: get() one span per process",
    )
    expect(
        len(spans) == len(CHECK_URLS),
        f"expected {len(CHECK_URLS)} spans (one per URL), got {len(spans)}: "
        "call q.get() once per process",
    )
    expect(
        sorted(s.label for s in spans) == sorted(u.rsplit("/", 1)[-1] for u in CHECK_URLS),
        "the spans are not one per URL: start one Process per URL in urls",
    )
    pids = {s.pid for s in spans}
    expect(
        os.getpid() not in pids,
        "a download ran in the notebook's own process: pass the function as target= "
        "(target=fake_download), don't call it",
    )
    expect(len(pids) == len(CHECK_URLS), "each download must run in its own Process")
    expect(
        timeline.max_overlap(spans) >= 2,
        "the downloads ran one after another: start every process first, then join them all",
    )
    expect(
        isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool),
        f"elapsed must be a number of seconds, got {type(elapsed).__name__}",
    )
    expect(
        elapsed >= timeline.total_time(spans) - 0.01,
        f"elapsed ({elapsed:.2f} s) is shorter than the downloads took "
        f"({timeline.total_time(spans):.2f} s): stop the clock after joining every process",
    )
    # Children still running 3 s after run_downloads returned were never waited for:
    # stop them, so that the check leaves nothing behind, and say so.
    stuck = stop_processes(multiprocessing.active_children(), timeout=3)
    expect(
        not stuck,
        f"{len(stuck)} process(es) were still running after run_downloads returned: "
        "join every process before returning",
    )
    passed(
        f"{len(spans)} downloads in {len(pids)} processes, overlapping, in {elapsed:.2f} s "
        f"(one download takes {CHECK_SECONDS} s)"
    )


# Each case of the exit-code exercise: how the child ends, and why it gets its code.
EXIT_CASES = {
    "returns 42": (
        processes.return_value,
        (42,),
        "Process throws the target's return value away; exit code 0 just means "
        "run() finished without an exception",
    ),
    "calls sys.exit()": (
        processes.exit_with,
        (None,),
        "sys.exit() with no argument (None) means success",
    ),
    "calls sys.exit('bye')": (
        processes.exit_with,
        ("bye",),
        "sys.exit() with a non-integer prints it to stderr and exits with 1",
    ),
    "is stopped with kill()": (
        processes.nap,
        (30,),
        "a process ended by signal N gets exitcode -N, and kill() sends SIGKILL "
        f"(signal.SIGKILL == {int(signal.SIGKILL)})",
    ),
}


def measure_exit_codes() -> dict[str, int | None]:
    """Run each case of :data:`EXIT_CASES` in a spawned child and return its exit code."""
    ctx = multiprocessing.get_context("spawn")
    procs = {}
    with processes.captured_stderr():  # the 'bye' child writes to stderr
        for name, (target, args, _) in EXIT_CASES.items():
            procs[name] = ctx.Process(target=target, args=args)
            procs[name].start()
        procs["is stopped with kill()"].kill()
        for p in procs.values():
            p.join(timeout=30)
    for p in procs.values():
        if p.is_alive():  # never expected; don't leave a child behind
            p.kill()
            p.join()
    return {name: p.exitcode for name, p in procs.items()}


def check_exit_codes(predicted: Any) -> None:
    """Compare predicted exit codes with the ones real children produce."""
    expect(
        isinstance(predicted, dict),
        f"predicted must be a dict (case -> exit code), got {type(predicted).__name__}",
    )
    missing = [case for case in EXIT_CASES if case not in predicted]
    expect(not missing, f"predicted is missing these cases: {missing}")
    for case, code in predicted.items():
        expect(case in EXIT_CASES, f"{case!r} is not one of the cases: {list(EXIT_CASES)}")
        expect(
            isinstance(code, int) and not isinstance(code, bool),
            f"predict an int for {case!r} (the value of p.exitcode), got {code!r}",
        )
    actual = measure_exit_codes()
    wrong = [case for case in EXIT_CASES if predicted[case] != actual[case]]
    if wrong:
        case = wrong[0]
        fail(f"a child that {case} does not exit with {predicted[case]}: {EXIT_CASES[case][2]}")
    passed(f"real children exited with {actual}")
