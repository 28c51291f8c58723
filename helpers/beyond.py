"""Workers for chapter 11 (beyond one machine: joblib and Dask).

Every function here runs in a joblib (loky) worker, a Dask worker or a process pool,
so it lives in a module those workers can import.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from helpers import timeline
from helpers.pools import whoami
from helpers.validate import check_count

__all__ = [
    "BlockResult",
    "THREAD_LIMIT_VARIABLES",
    "array_kind",
    "block_total",
    "fill_squares",
    "library_pids",
    "marked_sleep",
    "matmul_seconds",
    "memmap_source",
    "random_draw",
    "row_blocks",
    "square_all",
    "task_stream_spans",
    "thread_limits",
    "wait_for_file",
    "wait_for_scheduler_file",
]

# Environment variables that tell BLAS/OpenMP libraries how many threads to start.
THREAD_LIMIT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _check_array(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(value).__name__}")
    return value


def _check_range(start: Any, stop: Any, length: int) -> tuple[int, int]:
    # NumPy integers (from np.arange, an array's shape) are fine row numbers too
    start = int(start) if isinstance(start, np.integer) else start
    stop = int(stop) if isinstance(stop, np.integer) else stop
    check_count(start, "start")
    check_count(stop, "stop")
    if not start <= stop <= length:
        raise ValueError(f"need 0 <= start <= stop <= {length}, got start={start}, stop={stop}")
    return start, stop


def array_kind(a: np.ndarray) -> tuple[str, bool]:
    """What arrived in the worker: the array's type name and whether it is writeable."""
    a = _check_array(a, "a")
    return type(a).__name__, bool(a.flags.writeable)


def memmap_source(a: np.ndarray) -> str | None:
    """The file behind ``a`` if it is memory-mapped (its real path), else ``None``."""
    a = _check_array(a, "a")
    filename = getattr(a, "filename", None) if isinstance(a, np.memmap) else None
    return os.path.realpath(filename) if filename else None


class BlockResult(NamedTuple):
    """What :func:`block_total` reports about one block of rows."""

    start: int
    stop: int
    total: float
    memmapped: bool  # the worker got a memory-mapped view, not a pickled copy
    pid: int
    source: str | None = None  # the file the worker read, if memory-mapped


def block_total(data: np.ndarray, start: int, stop: int) -> BlockResult:
    """Sum rows ``start:stop`` of ``data``; report whether ``data`` arrived memory-mapped,
    and from which file."""
    data = _check_array(data, "data")
    start, stop = _check_range(start, stop, len(data))
    total = float(data[start:stop].sum())
    return BlockResult(
        start, stop, total, isinstance(data, np.memmap), os.getpid(), memmap_source(data)
    )


def row_blocks(n_rows: int, block: int) -> list[tuple[int, int]]:
    """Split ``range(n_rows)`` into ``(start, stop)`` ranges of at most ``block`` rows."""
    check_count(n_rows, "n_rows")
    check_count(block, "block", minimum=1)
    return [(start, min(start + block, n_rows)) for start in range(0, n_rows, block)]


def fill_squares(out: np.ndarray, start: int, stop: int) -> int:
    """Write ``i * i`` into ``out[i]`` for ``start <= i < stop``; return this worker's pid.

    ``out`` must be writeable: a ``numpy.memmap`` opened with ``mode="w+"`` or ``"r+"``
    is shared with the parent, so the parent sees what every worker wrote.
    """
    out = _check_array(out, "out")
    start, stop = _check_range(start, stop, len(out))
    i = np.arange(start, stop)
    out[start:stop] = i * i
    return os.getpid()


def library_pids(n_tasks: int = 4) -> set[int]:
    """Stand-in for library code you don't own: it calls joblib with its own settings.

    Returns the pids its tasks ran in. ``joblib.parallel_config`` around the call
    decides the backend, since the library does not choose one.
    """
    from joblib import Parallel, delayed

    check_count(n_tasks, "n_tasks", minimum=1)
    return set(Parallel(n_jobs=2)(delayed(whoami)() for _ in range(n_tasks)))


def thread_limits() -> dict[str, str | None]:
    """The thread-limit environment variables as this worker sees them."""
    return {name: os.environ.get(name) for name in THREAD_LIMIT_VARIABLES}


def random_draw() -> float:
    """A random number: a call whose result differs every time it really runs."""
    return random.random()


def task_stream_spans(
    records: Iterable[Mapping[str, Any]],
    pids: Mapping[str, int],
    *,
    wall_to_perf: float,
    labels: Mapping[str, str] | None = None,
) -> list[timeline.Span]:
    """Turn Dask task-stream records into :class:`helpers.timeline.Span` objects.

    ``records`` is ``get_task_stream(...).data``; ``pids`` maps worker addresses to
    pids (``client.run(os.getpid)``); ``wall_to_perf`` is ``time.perf_counter() -
    time.time()`` taken in this process (Dask stamps tasks with ``time.time()``; the
    course's charts use ``perf_counter``). ``labels`` maps task keys to bar labels
    (default: the function's name, the part of the key before the last ``-``).
    Only the ``compute`` part of each record is drawn.
    """
    if isinstance(wall_to_perf, bool) or not isinstance(wall_to_perf, (int, float)):
        raise TypeError(f"wall_to_perf must be a number of seconds, got {wall_to_perf!r}")
    if not isinstance(pids, Mapping):
        raise TypeError(f"pids must map worker addresses to pids, got {type(pids).__name__}")
    labels = dict(labels or {})
    spans = []
    for record in records:
        if not isinstance(record, Mapping) or "startstops" not in record:
            raise TypeError(f"records must be task-stream records (dicts), got {record!r}")
        worker = record["worker"]
        if worker not in pids:
            raise ValueError(f"pids has no entry for worker {worker!r}")
        key = str(record["key"])
        label = labels.get(key, key.rsplit("-", 1)[0])
        for part in record["startstops"]:
            if part["action"] == "compute":
                spans.append(
                    timeline.Span(
                        label,
                        pids[worker],
                        "DaskWorker",
                        "MainThread",
                        part["start"] + wall_to_perf,
                        part["stop"] + wall_to_perf,
                    )
                )
    return spans


def wait_for_scheduler_file(path: Any, timeout: float, process: Any = None) -> str:
    """Wait until a Dask scheduler has written its ``--scheduler-file``; return its address.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``RuntimeError`` if
    ``process`` (the scheduler's ``subprocess.Popen``) exits first.
    """
    import json
    import time
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path, got {type(path).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    path = Path(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the scheduler exited with code {process.returncode}")
        try:
            return json.loads(path.read_text())["address"]
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.05)  # not written yet, or only half written
    raise TimeoutError(f"no scheduler address in {path} after {timeout} s")


def square_all(xs: Iterable[float]) -> list[float]:
    """``[x * x for x in xs]``: many tiny tasks as one (a batch)."""
    from helpers.pools import square

    return [square(x) for x in xs]


def matmul_seconds(size: int, repeats: int, blas_threads: int | None = None) -> tuple[int, float]:
    """Multiply two ``size x size`` matrices ``repeats`` times; return (BLAS threads, seconds).

    ``blas_threads=None`` keeps the BLAS library's default (one thread per CPU);
    a number limits it with ``threadpoolctl.threadpool_limits`` for this call.
    """
    import contextlib
    import time

    from threadpoolctl import threadpool_info, threadpool_limits

    check_count(size, "size", minimum=1)
    check_count(repeats, "repeats", minimum=1)
    if blas_threads is not None:
        check_count(blas_threads, "blas_threads", minimum=1)
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)), rng.random((size, size))
    limit = (
        threadpool_limits(blas_threads, user_api="blas")
        if blas_threads is not None
        else contextlib.nullcontext()
    )
    with limit:
        threads = max(
            (lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
            default=1,
        )
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return threads, time.perf_counter() - start


def marked_sleep(folder: Any, name: str, seconds: float) -> str:
    """Create ``folder/NAME.started``, sleep ``seconds``, create ``folder/NAME.finished``.

    The two files show from outside whether the call started and whether it ran to its end.
    """
    import time
    from pathlib import Path

    from helpers.validate import check_seconds, check_str

    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    check_str(name, "name", nonempty=True)
    seconds = check_seconds(seconds)
    folder = Path(folder)
    (folder / f"{name}.started").touch()
    time.sleep(seconds)
    (folder / f"{name}.finished").touch()
    return name


def wait_for_file(path: Any, timeout: float) -> bool:
    """Wait until ``path`` exists (True) or ``timeout`` seconds have passed (False)."""
    import time

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path, got {type(path).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
