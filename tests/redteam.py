"""Shared by the red-team tests: run an exercise check on one answer and judge the verdict."""

from __future__ import annotations

import threading

import pytest

from helpers.checks import ExerciseFailed

WATCHDOG = 60  # seconds; a check must never get anywhere near this


def run_check(check_fn, answer):
    """Run ``check_fn(answer)`` in a thread; return the exception it raised (or None)."""
    outcome = {}

    def target():
        try:
            check_fn(answer)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["exc"] = exc
        outcome["done"] = True

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    if not outcome.get("done"):
        pytest.fail(f"the check hung (still running after {WATCHDOG} s)")
    return outcome.get("exc")


def expect(check_fn, answer, verdict):
    """``verdict`` "correct": the check accepts ``answer``; otherwise it rejects it, with a hint."""
    exc = run_check(check_fn, answer)
    if verdict == "correct":
        assert exc is None, f"a right answer was rejected: {exc!r}"
    else:
        assert isinstance(exc, ExerciseFailed), f"a wrong answer got {exc!r}, not ExerciseFailed"
        assert str(exc).strip(), "the hint is empty"
