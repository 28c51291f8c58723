"""Checks for the exercises of chapter 10 (pitfalls and debugging)."""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed, require_function
from helpers.pitfalls import Account, logged_square, square, use_lock

__all__ = ["preflight_tasks", "check_preflight", "logging_state", "check_worker_logging"]


def preflight_tasks() -> tuple[list[tuple[Any, tuple]], dict[int, str]]:
    """The batch check_preflight gives the learner, and what must be reported for it.

    Returns ``(tasks, expected)``: ``expected`` maps the index of each task that can't
    be pickled to a word of its reason. The caller must close the open file
    (``tasks[2][1][0]``) when done.
    """
    tasks = [
        (square, (3,)),  # fine
        (lambda x: x * 2, (4,)),  # the function is a lambda
        (square, (open(os.devnull),)),  # an open file as the argument
        (Account(5).deposit, (2,)),  # fine: a bound method of an importable class
        (square, ((x for x in range(3)),)),  # a generator as the argument
        (use_lock, (multiprocessing.Lock(), 1)),  # a multiprocessing lock as a task argument
        (square, (threading.Lock(),)),  # a thread lock
        (sum, ([1, 2, 3],)),  # fine
    ]
    expected = {1: "lambda", 2: "TextIOWrapper", 4: "generator", 5: "inheritance", 6: "lock"}
    return tasks, expected


def check_preflight(preflight: Callable[[list], Any]) -> None:
    """Exercise 1: ``preflight(tasks)`` maps the index of each unpicklable task to a reason."""
    require_function(preflight, "preflight")
    tasks, expected = preflight_tasks()
    try:
        try:
            found = preflight(tasks)
        except Exception as exc:
            fail(
                f"preflight raised {type(exc).__name__}: {exc}. It must report problems, not "
                "raise them: check_picklable(obj) returns a verdict instead of raising."
            )
    finally:
        tasks[2][1][0].close()
    expect(found is not None, "preflight returned None: return a dict {index: reason}.")
    expect(
        isinstance(found, dict),
        f"preflight returned a {type(found).__name__}: return a dict {{index: reason}}, "
        "e.g. {1: 'PicklingError: ...'}.",
    )
    keys = set(found)
    expect(
        all(isinstance(k, int) for k in keys),
        "use the tasks' indexes (0, 1, 2, ...) as the keys: enumerate(tasks).",
    )
    extra = sorted(keys - set(expected))
    expect(
        not extra,
        f"tasks {extra} can be pickled, but your dict lists them: leave out the tasks whose "
        "check_picklable(...).ok is True.",
    )
    missing = sorted(set(expected) - keys)
    if missing:
        args_only = {2, 4, 5, 6}
        if set(missing) <= args_only and 1 not in missing:
            fail(
                f"tasks {missing} are missing: their function pickles, but an argument does "
                "not. Check the whole (function, args) pair: both travel to the worker."
            )
        fail(f"tasks {missing} can't be pickled, but your dict leaves them out.")
    for index, word in expected.items():
        reason = found[index]
        expect(
            isinstance(reason, str) and reason.strip(),
            f"the reason for task {index} should be a non-empty string (the error), "
            f"got {reason!r}.",
        )
        expect(
            word.lower() in reason.lower(),
            f"the reason for task {index} ({reason!r}) doesn't say what failed: use the "
            "error text check_picklable gives you.",
        )
    passed(
        f"{len(expected)} of {len(tasks)} tasks can't be sent to a worker, each with its reason."
    )


def _learner_initializer(setup: Any, q: Any) -> None:
    """Pool initializer: run the learner's ``setup(q)`` (``logging.handlers`` is imported here)."""
    setup(q)


def logging_state(_: Any = None) -> tuple[list[str], int]:
    """Task: the root logger's handler class names and level, in the worker that runs it."""
    root = logging.getLogger()
    return [type(h).__name__ for h in root.handlers], root.getEffectiveLevel()


def check_worker_logging(setup_worker_logging: Callable[[Any], Any], timeout: float = 30) -> None:
    """Exercise 2: ``setup_worker_logging(q)`` as a pool initializer sends INFO records to ``q``.

    Runs it in 2 spawned pool workers, which log one INFO record per task with
    :func:`helpers.pitfalls.logged_square`; a ``QueueListener`` collects the records.
    """
    require_function(setup_worker_logging, "setup_worker_logging")
    initializer = LearnerFunction(setup_worker_logging)
    context = multiprocessing.get_context("spawn")
    q = context.Queue()
    kept = logging.handlers.BufferingHandler(capacity=1000)
    listener = logging.handlers.QueueListener(q, kept)
    listener.start()
    try:
        pool = context.Pool(2, initializer=_learner_initializer, initargs=(initializer, q))
        try:
            state = pool.apply_async(logging_state).get(timeout=timeout)
            results = pool.map_async(logged_square, range(6), chunksize=1).get(timeout=timeout)
            pool.close()
        except multiprocessing.TimeoutError:
            fail("the pool's workers did not answer within 30 s: does your initializer block?")
        except Exception as exc:
            fail(f"the pool failed: {type(exc).__name__}: {exc}. Does your initializer raise?")
        finally:
            pool.terminate()
            pool.join()
    finally:
        listener.stop()
        q.close()
        q.join_thread()
    handlers, level = state
    expect(
        "QueueHandler" in handlers,
        f"the worker's root logger has handlers {handlers}: add a "
        "logging.handlers.QueueHandler(q) to logging.getLogger() (the root logger).",
    )
    expect(
        level <= logging.INFO,
        f"the worker's root logger level is {logging.getLevelName(level)}, so INFO records "
        "are dropped: call logging.getLogger().setLevel(logging.INFO).",
    )
    other = [h for h in handlers if h != "QueueHandler"]
    expect(
        not other,
        f"the worker's root logger also has {other}: records would be written twice, once "
        "in the worker. Keep only the QueueHandler (root.handlers[:] = [handler]).",
    )
    messages = sorted(r.getMessage() for r in kept.buffer)
    wanted = [f"squaring {x}" for x in range(6)]
    expect(
        messages == wanted,
        f"the notebook received {len(messages)} records, expected {len(wanted)} (one per "
        "task): is your QueueHandler attached to the root logger, with the queue q?",
    )
    pids = {r.process for r in kept.buffer}
    expect(
        pids == {pid for _, pid in results} and os.getpid() not in pids,
        "the records don't come from the workers that ran the tasks.",
    )
    passed(f"{len(messages)} records from {len(pids)} worker process(es) reached the notebook.")
