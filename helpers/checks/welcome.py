"""Checks for the exercise in chapter 00 (welcome)."""

from __future__ import annotations

from typing import Any

from helpers.checks import expect, passed

__all__ = ["JOBS", "check_threads_or_processes"]

# Each job, the right tool for it, and why (the hint a wrong answer gets).
JOBS = {
    "download 50 web pages": (
        "threads",
        "a download spends its time waiting for the network, and a waiting thread "
        "releases the GIL, so threads overlap the waits",
    ),
    "resize 1,000 photos in a pure-Python loop": (
        "processes",
        "a pure-Python loop holds the GIL while it computes, so only processes run "
        "two of them at the same time",
    ),
    "wait for 20 database queries to answer": (
        "threads",
        "the program waits for the database most of the time; waiting releases the GIL",
    ),
    "count prime numbers below 10 million in Python": (
        "processes",
        "counting primes is pure computation: it is CPU-bound and holds the GIL",
    ),
}


def check_threads_or_processes(answers: Any) -> None:
    """Check a dict mapping each job in :data:`JOBS` to "threads" or "processes"."""
    expect(
        isinstance(answers, dict),
        f"answers must be a dict (job -> 'threads' or 'processes'), got {type(answers).__name__}",
    )
    missing = [job for job in JOBS if job not in answers]
    expect(not missing, f"answers is missing these jobs: {missing}")
    extra = [job for job in answers if job not in JOBS]
    expect(not extra, f"answers has jobs that are not in the list: {extra}")
    for job, (right, why) in JOBS.items():
        given = answers[job]
        expect(
            given in ("threads", "processes"),
            f"the answer for {job!r} must be 'threads' or 'processes', got {given!r}",
        )
        expect(given == right, f"look again at {job!r}: {why}")
    passed(
        "waiting (I/O-bound) work overlaps in threads; computing (CPU-bound) work needs processes"
    )
