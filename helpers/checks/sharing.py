"""Checks for the exercises of chapter 06 (managers and shared memory).

Each check runs the learner's function in real spawned worker processes (through
:class:`helpers.checks.LearnerFunction`), as the exercise asks, and looks at what
arrived in the parent.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing import shared_memory
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed

__all__ = ["check_record_scores", "check_histogram", "HISTOGRAM_CHUNKS"]

TIMEOUT = 30  # seconds for all workers of one check

# Scores already on the board, and the new scores each worker records.
_BOARD = {"ada": [3], "bob": [], "cy": [7, 1]}
_NEW_SCORES = {"ada": [10, 12], "bob": [5], "cy": [2, 9, 4]}


def _call_reporting(func: Any, args: tuple, conn: Any) -> None:
    """Worker: call ``func(*args)`` and send back ("ok", "") or (error type name, message)."""
    try:
        func(*args)
    except BaseException as exc:  # report anything, so nothing reaches the child's stderr
        conn.send((type(exc).__name__, str(exc)))
    else:
        conn.send(("ok", ""))
    finally:
        conn.close()


def _run_in_workers(func: LearnerFunction, calls: list[tuple], what: str) -> None:
    """Run ``func(*args)`` for each args in ``calls``, each in its own spawned process.

    Fails with a hint if a call raises or does not finish within TIMEOUT seconds (the
    process is then terminated, so a check never hangs).
    """
    ctx = multiprocessing.get_context("spawn")
    workers = []
    deadline = time.monotonic() + TIMEOUT
    try:
        for args in calls:
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_call_reporting, args=(func, args, sender))
            proc.start()
            sender.close()
            workers.append((proc, receiver))
        reports = []
        for _proc, receiver in workers:
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                fail(f"{what} did not finish within {TIMEOUT} s in a worker process")
            try:
                reports.append(receiver.recv())
            except EOFError:
                fail(f"the worker process running {what} died without an answer")
    finally:
        for proc, receiver in workers:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join()
            receiver.close()
    for kind, message in reports:
        if kind == "NameError":
            fail(
                f"{what} raised NameError in the worker ({message}). The worker is a fresh "
                "process: import what you use (numpy, shared_memory) inside the function."
            )
        if kind == "FileNotFoundError":
            fail(
                f"{what} could not find a shared memory block ({message}). Attach with "
                "SharedMemory(name=name), and never unlink() in a worker: only the process "
                "that created the block unlinks it, once, after every worker is done."
            )
        if kind != "ok":
            fail(f"{what} raised {kind} in the worker process: {message}")


def _learner(func: Any, name: str) -> LearnerFunction:
    if func is None or not callable(func):
        fail(f"define the function {name} first (run its cell), then run this check")
    try:
        return LearnerFunction(func)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


def check_record_scores(func: Any) -> None:
    """Exercise 1: ``record_scores(board, player, scores)`` appends to a list in a managed dict.

    Runs the function in spawned workers, one player each, against a ``Manager().dict()``
    whose values are plain lists; every old and new score must be there afterwards.
    """
    learner = _learner(func, "record_scores")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        board = manager.dict({player: list(scores) for player, scores in _BOARD.items()})
        calls = [(board, player, scores) for player, scores in _NEW_SCORES.items()]
        _run_in_workers(learner, calls, "record_scores")
        result = board.copy()  # a plain dict, read before the manager shuts down
    expected = {player: _BOARD[player] + _NEW_SCORES[player] for player in _BOARD}
    expect(
        set(result) == set(expected),
        f"the board should still have exactly the players {sorted(expected)}, got {sorted(result)}",
    )
    if result == _BOARD:
        fail(
            "the board did not change. board[player] gives you a copy of the list from the "
            "manager; appending to the copy changes nothing there. Read the list, extend it, "
            "and assign it back: board[player] = updated."
        )
    for player in sorted(expected):
        got, want = result[player], expected[player]
        if got == _NEW_SCORES[player] and got != want:
            fail(
                f"{player}'s old scores {_BOARD[player]} are gone (got {got}): extend the "
                "list that is on the board instead of replacing it."
            )
        expect(
            got == want,
            f"{player}'s scores should be {want} (old scores, then the new ones in order), "
            f"got {got}",
        )
    passed(
        "every worker's scores reached the managed dict, and the old ones are still there "
        "(the updated list was assigned back)."
    )


# Values each worker counts; bins are 0..HISTOGRAM_BINS-1.
HISTOGRAM_BINS = 8
HISTOGRAM_CHUNKS = (
    [0, 1, 1, 2, 3, 3, 3, 7, 7, 5],
    [4, 4, 4, 4, 0, 6, 6, 2],
    [7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 1],
)


def check_histogram(func: Any) -> None:
    """Exercise 2: ``histogram_into(name, shape, row, values)`` counts into shared memory.

    Creates an int64 array of ``shape`` (one row per worker) in a shared memory block,
    runs the function in spawned workers, one row each, then compares every row with
    ``numpy.bincount``. The check creates the block and unlinks it (exactly once).
    """
    import numpy as np

    learner = _learner(func, "histogram_into")
    shape = (len(HISTOGRAM_CHUNKS), HISTOGRAM_BINS)
    nbytes = shape[0] * shape[1] * np.dtype(np.int64).itemsize
    shm = shared_memory.SharedMemory(create=True, size=nbytes)
    unlinked_by_worker = False
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[:] = 0
        calls = [(shm.name, shape, row, list(chunk)) for row, chunk in enumerate(HISTOGRAM_CHUNKS)]
        try:
            _run_in_workers(learner, calls, "histogram_into")
        finally:
            result = counts.copy()
            del counts
    finally:
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            unlinked_by_worker = True
    expect(
        not unlinked_by_worker,
        "the shared memory block was already unlinked when the workers were done: a worker "
        "must only close() its handle; the process that created the block unlinks it, once.",
    )
    if not result.any():
        fail(
            "the shared array is still all zeros: nothing reached shared memory. Make a NumPy "
            "view on the block (np.ndarray(shape, dtype=np.int64, buffer=shm.buf)) and write "
            "into view[row], rather than into a new array."
        )
    for row, chunk in enumerate(HISTOGRAM_CHUNKS):
        want = np.bincount(chunk, minlength=HISTOGRAM_BINS)
        expect(
            np.array_equal(result[row], want),
            f"row {row} should hold the counts of its values {list(chunk)}, i.e. "
            f"{want.tolist()}, got {result[row].tolist()}. Each worker writes only its own row.",
        )
    total = result.sum(axis=0)
    expect(
        np.array_equal(total, np.bincount(np.concatenate(HISTOGRAM_CHUNKS))),
        "the rows are right but do not add up to the histogram of all values",
    )
    passed(
        f"{shape[0]} workers each counted into their own row of the shared array; "
        f"the total histogram is {total.tolist()}."
    )
