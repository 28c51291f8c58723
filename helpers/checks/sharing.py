"""Checks for the exercises of chapter 06 (managers and shared memory).

Each check runs the learner's function in real spawned worker processes (through
:class:`helpers.checks.LearnerFunction`), as the exercise asks, and looks at what
arrived in the parent.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from itertools import permutations
from multiprocessing import shared_memory
from multiprocessing.managers import AcquirerProxy, BaseManager, DictProxy
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed

__all__ = ["check_record_scores", "check_histogram", "HISTOGRAM_CHUNKS"]

TIMEOUT = 30  # seconds for all workers of one check

# Scores already on the board, and the new scores each worker records. "dee" gets two
# workers at once, so an update that isn't done under the lock can be lost.
_BOARD = {"ada": [3], "bob": [], "cy": [7, 1], "dee": [8]}
_NEW_SCORES = {"ada": [[10, 12]], "bob": [[5]], "cy": [[2, 9, 4]], "dee": [[1, 2], [6]]}


class _WatchedLock:
    """A lock, served by the check's manager, that knows whether it is held (and which time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holding = 0  # which acquisition holds it now (0: nobody)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._count += 1
            self.holding = self._count
        return got

    def release(self) -> None:
        self.holding = 0
        self._lock.release()


class _WatchedBoard(dict):
    """A dict, served by the check's manager, that logs each read and write of a player,
    with the lock acquisition held at that moment."""

    def __init__(self, data: dict, lock: _WatchedLock) -> None:
        super().__init__(data)
        self._watched = lock
        self._log: list[tuple[str, Any, int, int]] = []

    def __getitem__(self, key: Any) -> Any:
        self._log.append(("get", key, threading.get_ident(), self._watched.holding))
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._log.append(("set", key, threading.get_ident(), self._watched.holding))
        super().__setitem__(key, value)

    def accesses(self) -> list[tuple[str, Any, int, int]]:
        return list(self._log)


class _BoardProxy(DictProxy):
    _exposed_ = (*DictProxy._exposed_, "accesses")

    def accesses(self) -> list:
        return self._callmethod("accesses")


_SERVED_LOCK: _WatchedLock | None = None


def _make_lock() -> _WatchedLock:
    global _SERVED_LOCK
    _SERVED_LOCK = _WatchedLock()
    return _SERVED_LOCK


def _make_board(data: dict) -> _WatchedBoard:
    if _SERVED_LOCK is None:
        raise RuntimeError("create the Lock first")
    return _WatchedBoard(data, _SERVED_LOCK)


class _BoardManager(BaseManager):
    """The check's manager: a managed dict and a managed Lock that watch each other."""


_BoardManager.register("Lock", _make_lock, proxytype=AcquirerProxy)
_BoardManager.register("Board", _make_board, proxytype=_BoardProxy)


def _unlocked_updates(accesses: list) -> list:
    """Players whose write was not under the same lock acquisition as the read before it."""
    last_read: dict[tuple[int, Any], int] = {}
    bad = []
    for kind, key, thread, holding in accesses:
        if kind == "get":
            last_read[thread, key] = holding
        elif not holding or last_read.get((thread, key)) != holding:
            bad.append(key)
    return bad


def _watch_close() -> list[str]:
    """In a worker: make ``SharedMemory.close()`` note each call the worker's code makes.

    Returns the list the names are appended to. Calls made by ``SharedMemory.__del__``
    (when a handle is garbage-collected) are not counted: the worker must close on purpose.
    """
    closed: list[str] = []
    original = shared_memory.SharedMemory.close

    def close(self: Any) -> None:
        if sys._getframe(1).f_code.co_name != "__del__":
            closed.append(self.name)
        original(self)

    shared_memory.SharedMemory.close = close  # type: ignore[method-assign]
    return closed


def _call_reporting(func: Any, args: tuple, conn: Any, watch_close: bool = False) -> None:
    """Worker: call ``func(*args)`` and send back ("ok", "", closes) or (error type, message,
    closes), where ``closes`` counts the worker's own ``SharedMemory.close()`` calls."""
    closed = _watch_close() if watch_close else []
    try:
        func(*args)
    except BaseException as exc:  # report anything, so nothing reaches the child's stderr
        conn.send((type(exc).__name__, str(exc), len(closed)))
    else:
        conn.send(("ok", "", len(closed)))
    finally:
        conn.close()


def _run_in_workers(
    func: LearnerFunction, calls: list[tuple], what: str, watch_close: bool = False
) -> list[int]:
    """Run ``func(*args)`` for each args in ``calls``, each in its own spawned process.

    Fails with a hint if a call raises or does not finish within TIMEOUT seconds (the
    process is then terminated, so a check never hangs). Returns, per call, how many times
    it called ``SharedMemory.close()`` (counted only with ``watch_close``).
    """
    ctx = multiprocessing.get_context("spawn")
    workers = []
    deadline = time.monotonic() + TIMEOUT
    try:
        for args in calls:
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_call_reporting, args=(func, args, sender, watch_close))
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
    for kind, message, _ in reports:
        if kind == "NameError":
            fail(
                f"{what} raised NameError in the worker ({message}). The worker is a fresh "
                "process: it knows the modules your function uses that the notebook imported "
                "(np, shared_memory, ...), but no variables from the notebook."
            )
        if kind == "BufferError":
            fail(
                f"{what} raised BufferError in the worker ({message}): close() can't unmap "
                "the block while a view of it is alive. Drop your NumPy view (del it) first."
            )
        if kind == "FileNotFoundError":
            fail(
                f"{what} could not find a shared memory block ({message}). Attach with "
                "SharedMemory(name=name), and never unlink() in a worker: only the process "
                "that created the block unlinks it, once, after every worker is done."
            )
        if kind != "ok":
            fail(f"{what} raised {kind} in the worker process: {message}")
    return [closes for _, _, closes in reports]


def _learner(func: Any, name: str) -> LearnerFunction:
    if func is None or not callable(func):
        fail(f"define the function {name} first (run its cell), then run this check")
    try:
        return LearnerFunction(func)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


class _PatientLock:
    """A local stand-in for a manager Lock that gives up after a second instead of hanging."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, 1.0 if blocking and timeout < 0 else timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        if not self.acquire():
            raise TimeoutError("the lock was not released within a second")
        return True

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _does_nothing(func: Any) -> bool:
    """True if ``func`` leaves a plain dict unchanged (an untouched skeleton): checked here,
    in a thread, before starting any process, so such an answer is turned down at once."""
    board = {player: list(scores) for player, scores in _BOARD.items()}
    outcome: list[bool] = []

    def trial() -> None:
        try:
            func(board, _PatientLock(), "ada", [10, 12])
        except BaseException:  # judged by the real run
            return
        outcome.append(board == _BOARD)

    thread = threading.Thread(target=trial, name="record_scores trial", daemon=True)
    thread.start()
    thread.join(timeout=2)
    return outcome == [True]


def check_record_scores(func: Any) -> None:
    """Exercise 1: ``record_scores(board, lock, player, scores)`` appends under a lock.

    Runs the function in spawned workers, all at once: one per player, and two for the
    player "dee". The board is a managed dict of plain lists and the lock a managed Lock,
    both served by a manager that notes, for every read and write of a player, whether the
    lock was held: the read and the write back must happen in the same ``with lock:``.
    """
    learner = _learner(func, "record_scores")
    if _does_nothing(func):
        fail(
            "record_scores left the board as it was. board[player] gives you a copy of the "
            "list from the manager: read it, extend it, and assign it back (under the lock)."
        )
    ctx = multiprocessing.get_context("spawn")
    with _BoardManager(ctx=ctx) as manager:
        lock = manager.Lock()
        board = manager.Board({player: list(scores) for player, scores in _BOARD.items()})
        calls = [
            (board, lock, player, scores)
            for player, batches in _NEW_SCORES.items()
            for scores in batches
        ]
        _run_in_workers(learner, calls, "record_scores")
        result = board.copy()  # a plain dict, read before the manager shuts down
        unlocked = _unlocked_updates(board.accesses())
    expect(
        set(result) == set(_BOARD),
        f"the board should still have exactly the players {sorted(_BOARD)}, got {sorted(result)}",
    )
    if result == _BOARD:
        fail(
            "the board did not change. board[player] gives you a copy of the list from the "
            "manager; appending to the copy changes nothing there. Read the list, extend it, "
            "and assign it back: board[player] = updated."
        )
    for player in sorted(_BOARD):
        got, old = result[player], _BOARD[player]
        if got[: len(old)] != old:
            fail(
                f"{player}'s old scores {old} are gone (got {got}): extend the list that is "
                "on the board instead of replacing it."
            )
    if unlocked:
        fail(
            f"the list of {unlocked[0]!r} was written back without holding the lock since it "
            "was read. Two workers update 'dee' at the same time: put the read, the extend "
            "and the write back together in one `with lock:` block, or one worker's scores "
            "can be lost."
        )
    for player in sorted(_BOARD):
        got, old, batches = result[player], _BOARD[player], _NEW_SCORES[player]
        orders = [old + [s for batch in order for s in batch] for order in permutations(batches)]
        want = " or ".join(str(order) for order in orders)
        expect(
            got in orders,
            f"{player}'s scores should be {want} (old scores, then each worker's new ones), "
            f"got {got}",
        )
    passed(
        "every worker's scores reached the managed dict, the old ones are still there, and "
        "the two workers on 'dee' each read and wrote back under the lock."
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
            closes = _run_in_workers(learner, calls, "histogram_into", watch_close=True)
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
    expect(
        all(closes),
        "the counts are right, but a worker never called close() on its SharedMemory: every "
        "process that attached closes its own handle when done (after dropping its view).",
    )
    total = result.sum(axis=0)
    expect(
        np.array_equal(total, np.bincount(np.concatenate(HISTOGRAM_CHUNKS))),
        "the rows are right but do not add up to the histogram of all values",
    )
    passed(
        f"{shape[0]} workers each counted into their own row of the shared array and closed "
        f"their handle; the total histogram is {total.tolist()}."
    )
