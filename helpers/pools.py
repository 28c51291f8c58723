"""Workers for chapter 02 (process pools); chapter 03 reuses some of them.

Every function here runs in a pool's worker process, so it lives in a module the
workers can import by name (``from helpers.pools import square``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
from typing import Any

from helpers import timeline
from helpers.validate import check_number as _check_number
from helpers.validate import check_seconds as _check_seconds

__all__ = [
    "square",
    "slow_square",
    "power",
    "checked_sqrt",
    "timed_sleep",
    "timed_sleep_task",
    "whoami",
    "add_one",
    "exit_abruptly",
    "load_table",
    "translate",
    "logged_sqrt",
    "slow_sqrt",
    "flaky_sqrt",
    "Root",
    "unloadable",
    "failing_setup",
]


def square(x: float) -> float:
    """Return ``x * x``."""
    _check_number(x)
    return x * x


def slow_square(x: float, seconds: float = 0.1) -> float:
    """Sleep ``seconds`` (a stand-in for real work), then return ``x * x``."""
    _check_number(x)
    time.sleep(_check_seconds(seconds))
    return x * x


def power(base: float, exponent: int) -> float:
    """Return ``base ** exponent`` (two arguments: use it with ``starmap``)."""
    _check_number(base, "base")
    if isinstance(exponent, bool) or not isinstance(exponent, int):
        raise TypeError(f"exponent must be an int, got {type(exponent).__name__}")
    return base**exponent


def checked_sqrt(x: float) -> float:
    """Return the square root of ``x``; raise ``ValueError`` for a negative ``x``.

    The task that fails on purpose: some inputs of a batch are bad.
    """
    _check_number(x)
    if x < 0:
        raise ValueError(f"cannot take the square root of a negative number: {x}")
    return math.sqrt(x)


def timed_sleep(label: str, seconds: float) -> timeline.Span:
    """Sleep ``seconds`` and return the :class:`~helpers.timeline.Span` it took."""
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    seconds = _check_seconds(seconds)
    with timeline.record(label) as rec:
        time.sleep(seconds)
    return rec.span


def timed_sleep_task(task: tuple[str, float]) -> timeline.Span:
    """:func:`timed_sleep` taking one ``(label, seconds)`` tuple, for ``map`` and ``imap``."""
    if not isinstance(task, tuple) or len(task) != 2:
        raise TypeError(f"task must be a (label, seconds) tuple, got {task!r}")
    return timed_sleep(*task)


def whoami(_: Any = None) -> int:
    """Return the pid of the process running this task (the argument is ignored)."""
    return os.getpid()


def add_one(x: int) -> int:
    """Return ``x + 1``: a task so tiny that sending it costs more than running it."""
    _check_number(x)
    return x + 1


def exit_abruptly(code: int = 1, delay: float = 0.0) -> None:
    """After ``delay`` seconds, end this worker process with ``os._exit(code)``, as a crash would.

    No exception, no cleanup, no result: the pool just loses the process.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code must be an int, got {type(code).__name__}")
    time.sleep(_check_seconds(delay, "delay"))
    os._exit(code)


# Per-worker state, set once by the initializer in each worker process.
_table: dict[str, str] | None = None
_loaded: tuple[int, float] | None = None


def load_table(table: dict[str, str], seconds: float = 0.0) -> None:
    """Pool initializer: keep ``table`` in this worker (after an expensive-looking load).

    ``seconds`` simulates the one-off set-up cost (opening a model, a database, ...).
    """
    global _table, _loaded
    if not isinstance(table, dict):
        raise TypeError(f"table must be a dict, got {type(table).__name__}")
    time.sleep(_check_seconds(seconds))
    _table = dict(table)
    _loaded = (os.getpid(), time.perf_counter())


def translate(word: str) -> tuple[str, int, float]:
    """Look ``word`` up in this worker's table: ``(translation, pid, loaded_at)``.

    ``loaded_at`` is when this worker's initializer ran, so tasks that share a
    worker show the same value. Raises ``RuntimeError`` without the initializer.
    """
    if not isinstance(word, str):
        raise TypeError(f"word must be a str, got {type(word).__name__}")
    if _table is None or _loaded is None:
        raise RuntimeError("no table in this worker: pass initializer=load_table to the pool")
    return _table.get(word, "?"), _loaded[0], _loaded[1]


def logged_sqrt(x: float, folder: str, seconds: float = 0.0) -> float:
    """Leave a file named after ``x`` in ``folder``, sleep ``seconds``, then ``checked_sqrt(x)``.

    The files count the tasks that really ran, even when their results are lost.
    """
    _check_number(x)
    if not isinstance(folder, str) or not os.path.isdir(folder):
        raise ValueError(f"folder must be the path of an existing folder, got {folder!r}")
    with open(os.path.join(folder, f"task-{x}"), "w"):
        pass
    time.sleep(_check_seconds(seconds))
    return checked_sqrt(x)


def slow_sqrt(x: float, seconds: float = 0.5) -> float:
    """``checked_sqrt(x)``, slowly: a bad ``x`` fails at once, a good one takes ``seconds``."""
    result = checked_sqrt(x)
    time.sleep(_check_seconds(seconds))
    return result


class Root(float):
    """A square root (a ``float``) that also records where and when it was computed.

    ``pid`` is the process that computed it; ``start`` and ``end`` are
    :func:`helpers.timeline.now` readings, so calls can be checked for overlap.
    """

    pid: int
    start: float
    end: float

    def __new__(cls, value: float, pid: int, start: float, end: float) -> Root:
        root = super().__new__(cls, value)
        root.pid, root.start, root.end = pid, start, end
        return root

    def __reduce__(self) -> tuple[Any, tuple[float, int, float, float]]:
        return (Root, (float(self), self.pid, self.start, self.end))


def flaky_call_log(pid: int) -> str:
    """The file in which :func:`flaky_sqrt` notes its calls (``x attempt`` lines) for the
    process ``pid`` and its workers, if that file exists (the exercise's check creates it)."""
    return os.path.join(tempfile.gettempdir(), f"helpers-flaky-sqrt-calls-{pid}.log")


def _note_flaky_call(x: float, attempt: int) -> None:
    parent = multiprocessing.parent_process()
    log = flaky_call_log(parent.pid if parent is not None else os.getpid())
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)  # never creates it
    except OSError:
        return
    try:
        os.write(fd, f"{float(x)!r} {attempt}\n".encode())  # one small write: atomic
    finally:
        os.close(fd)


def flaky_sqrt(x: float, attempt: int, seconds: float = 0.05) -> Root:
    """``checked_sqrt(x)``, but for ``x >= 0`` attempts 1 to ``int(x) % 3`` fail first.

    Stands in for a task that talks to a flaky server: a ``ConnectionError`` is worth
    retrying (``attempt`` counts from 1), a ``ValueError`` (negative ``x``) is not. A call
    for ``x >= 0`` takes ``seconds``; the result is a :class:`Root`, and a ``ConnectionError``
    carries the same ``pid``, ``start`` and ``end``. While the file
    :func:`flaky_call_log` names exists, each call is noted in it.
    """
    _check_number(x)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
    seconds = _check_seconds(seconds)
    _note_flaky_call(x, attempt)
    if x < 0:  # fails at once, on every attempt
        raise ValueError(
            f"cannot take the square root of a negative number: {x} (attempt {attempt})"
        )
    result = math.sqrt(x)
    start = timeline.now()
    time.sleep(seconds)
    if attempt <= int(x) % 3:
        error = ConnectionError(f"lost the connection while working on {x} (attempt {attempt})")
        error.pid, error.start, error.end = os.getpid(), start, timeline.now()  # like a Root's
        raise error
    return Root(result, os.getpid(), start, timeline.now())


def failing_setup(folder: str) -> None:
    """A pool initializer that fails: it leaves a file named after its pid in ``folder``
    (so the caller can count the workers that tried), then raises ``RuntimeError``."""
    if not isinstance(folder, str) or not os.path.isdir(folder):
        raise ValueError(f"folder must be the path of an existing folder, got {folder!r}")
    with open(os.path.join(folder, f"worker-{os.getpid()}"), "w"):
        pass
    raise RuntimeError("the worker's set-up failed")


class _Unloadable:
    """Pickles fine; unpickling it raises (as a class missing in the parent would)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_refuse_to_load, ())


def _refuse_to_load() -> None:
    raise RuntimeError("this result can't be unpickled here")


def unloadable(_: Any = None) -> Any:
    """Return a result that the parent process can't unpickle."""
    return _Unloadable()
