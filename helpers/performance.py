"""Workers and measuring tools for chapter 09 (performance).

Functions that run in child processes live here so that spawn and forkserver children can
import them by name. NumPy and threadpoolctl are imported inside the functions that need
them, so a child that only sleeps or counts does not pay for those imports.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds
from helpers.work import busy_sum

__all__ = [
    "Comparison",
    "compare",
    "amdahl_speedup",
    "Load",
    "busy_elsewhere",
    "nap",
    "lane",
    "noop",
    "import_numpy",
    "numpy_loaded",
    "start_join_seconds",
    "TRANSFER_METHODS",
    "transfer_seconds",
    "checksum",
    "blas_threads",
    "one_blas_thread",
    "private_memory",
    "private_memory_after",
    "memory_counts",
    "profiled_busy_sum",
]


# --- 1. Measuring honestly ------------------------------------------------------------


class Comparison:
    """Timings of several callables measured side by side, round after round.

    ``times[label]`` holds one duration per round. :meth:`best` is the least disturbed
    run of one callable (what ``timeit`` reports); :meth:`ratio` is the median, over
    rounds, of the ratio of two callables timed in the same round, which a busy machine
    disturbs far less than two separate timings.
    """

    def __init__(self, times: Mapping[str, Sequence[float]]):
        if not isinstance(times, Mapping) or not times:
            raise ValueError("times must be a non-empty mapping of label -> durations")
        lengths = {len(v) for v in times.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError("times must hold the same number (>= 1) of rounds for each label")
        self.times = {str(k): [float(t) for t in v] for k, v in times.items()}

    @property
    def rounds(self) -> int:
        return len(next(iter(self.times.values())))

    def _get(self, label: str) -> list[float]:
        if label not in self.times:
            raise ValueError(f"label must be one of {list(self.times)}, got {label!r}")
        return self.times[label]

    def best(self, label: str) -> float:
        """The shortest time of ``label``: the run the machine disturbed least."""
        return min(self._get(label))

    def ratio(self, label: str, baseline: str) -> float:
        """Median over rounds of ``time(label) / time(baseline)`` measured in the same round."""
        pairs = zip(self._get(label), self._get(baseline), strict=True)
        return statistics.median(a / b for a, b in pairs if b > 0)

    def __repr__(self) -> str:
        best = ", ".join(f"{k}: {self.best(k) * 1e3:.1f} ms" for k in self.times)
        return f"Comparison({self.rounds} rounds; best {best})"


def compare(funcs: Mapping[str, Callable[[], Any]], repeat: int = 5) -> Comparison:
    """Time each callable in ``funcs`` once per round, ``repeat`` rounds, side by side.

    Every round runs all of them one after the other (in turn starting with a different
    one), so a burst of load from other programs hits them alike.
    """
    if not isinstance(funcs, Mapping) or not funcs:
        raise ValueError("funcs must be a non-empty mapping of label -> callable")
    for label, func in funcs.items():
        if not callable(func):
            raise TypeError(f"funcs[{label!r}] must be callable, got {type(func).__name__}")
    _check_count(repeat, "repeat", minimum=1)
    labels = list(funcs)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(repeat):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            start = time.perf_counter()
            funcs[label]()
            times[label].append(time.perf_counter() - start)
    return Comparison(times)


# --- 2. Speed-up and Amdahl's law ------------------------------------------------------


def amdahl_speedup(serial_fraction: float, workers: Any) -> Any:
    """Amdahl's law: the speed-up ``1 / (f + (1 - f) / n)`` with ``n`` workers.

    ``workers`` may be a number or a NumPy array (the result is then an array).
    """
    if isinstance(serial_fraction, bool) or not isinstance(serial_fraction, (int, float)):
        raise TypeError(f"serial_fraction must be a number, got {type(serial_fraction).__name__}")
    if not 0 <= serial_fraction <= 1:
        raise ValueError(f"serial_fraction must be between 0 and 1, got {serial_fraction}")
    return 1 / (serial_fraction + (1 - serial_fraction) / workers)


class Load:
    """What :func:`busy_elsewhere` measured: ``cpus`` kept busy by other programs."""

    def __init__(self) -> None:
        self.cpus = math.nan
        self.seconds = math.nan

    def __repr__(self) -> str:
        return f"Load(cpus={self.cpus:.2f} over {self.seconds:.2f} s)"


@contextlib.contextmanager
def busy_elsewhere() -> Iterator[Load]:
    """Measure how many CPUs *other* programs kept busy during the ``with`` block.

    CPU time used by the whole machine (``psutil.cpu_times``) minus the CPU time of this
    process and its children, divided by the block's duration. Children that ended during
    the block count as ours too (the time of reaped children, where the system reports it:
    Linux). ``load.cpus`` is set when the block ends; 0 means the machine was ours alone.
    """
    import psutil

    me = psutil.Process()

    def ours() -> float:
        total = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:  # a child that ended meanwhile
                continue
            total += times.user + times.system
            # children it has already waited for (0 where the system doesn't say)
            total += getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        return total

    def machine() -> float:
        t = psutil.cpu_times()
        return (
            t.user
            + t.system
            + sum(getattr(t, name, 0.0) for name in ("nice", "irq", "softirq", "steal"))
        )

    load = Load()
    wall, everyone, mine = time.perf_counter(), machine(), ours()
    try:
        yield load
    finally:
        seconds = time.perf_counter() - wall
        used = (machine() - everyone) - (ours() - mine)
        load.seconds = seconds
        load.cpus = max(0.0, used / seconds) if seconds > 0 else 0.0


def nap(seconds: float) -> float:
    """Sleep ``seconds`` (work that waits, like I/O) and return ``seconds``."""
    seconds = _check_seconds(seconds)
    time.sleep(seconds)
    return seconds


def lane(kind: str, count: int, size: float) -> int:
    """Run ``count`` tasks one after another in this worker; return ``count``.

    ``kind="cpu"``: each task is ``busy_sum(size)`` (``size`` an int: CPU-bound work);
    ``kind="wait"``: each task sleeps ``size`` seconds (work that waits). Submitting one
    lane per worker keeps exactly that many workers busy.
    """
    if kind not in ("cpu", "wait"):
        raise ValueError(f"kind must be 'cpu' or 'wait', got {kind!r}")
    _check_count(count, "count")
    if kind == "cpu":
        _check_count(size, "size")
        for _ in range(count):
            busy_sum(size)
    else:
        size = _check_seconds(size, "size")
        for _ in range(count):
            time.sleep(size)
    return count


# --- 3. Start-up cost ------------------------------------------------------------------


def noop() -> None:
    """Do nothing: a child that only starts and exits."""


def import_numpy() -> str:
    """Import NumPy (free if this process already has it) and return its version."""
    import numpy

    return numpy.__version__


def numpy_loaded(_: Any = None) -> bool:
    """Whether this process has imported NumPy already (the argument is ignored)."""
    import sys

    return "numpy" in sys.modules


def start_join_seconds(method: str, target: Callable[[], Any] = noop, repeat: int = 3) -> float:
    """The shortest of ``repeat`` timings of ``Process(target).start()`` + ``join()``.

    Uses a context for ``method`` ("fork", "spawn" or "forkserver"), not the default.
    """
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(
            f"method must be one of {multiprocessing.get_all_start_methods()}, got {method!r}"
        )
    if not callable(target):
        raise TypeError(f"target must be callable, got {type(target).__name__}")
    _check_count(repeat, "repeat", minimum=1)
    ctx = multiprocessing.get_context(method)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        p = ctx.Process(target=target)
        p.start()
        p.join(timeout=60)
        took = time.perf_counter() - start
        if p.is_alive():
            p.terminate()
            p.join()
            raise RuntimeError(f"a {method} child did not finish within 60 s")
        if p.exitcode != 0:
            raise RuntimeError(f"a {method} child failed with exit code {p.exitcode}")
        best = min(best, took)
    return best


# --- 4. The cost of moving data -------------------------------------------------------

TRANSFER_METHODS = ("pipe", "queue", "shared memory", "new shared memory")


def checksum(data: Any) -> int:
    """Read every byte of a uint8 NumPy array (or bytes): their sum, as 8-byte words mod 2**64.

    The receivers in :func:`transfer_seconds` call it, so each one really reads the data.
    """
    import numpy as np

    array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 1:
        raise TypeError("data must be bytes or a 1-D uint8 NumPy array")
    if len(array) % 8 == 0:
        return int(array.view(np.uint64).sum())
    return int(array.sum(dtype=np.uint64))


def _sink(method: str, data: Any, control: Any, shm_name: str | None) -> None:
    """Child for :func:`transfer_seconds`: receive payloads until told to stop, and consume
    each one (sum all its bytes, as real work would read them); reply with the length and
    the sum (proof that this round's data arrived and was read)."""
    from multiprocessing import shared_memory

    import numpy as np

    shm = shared_memory.SharedMemory(name=shm_name) if shm_name else None
    try:
        control.send("ready")
        while (message := control.recv()) is not None:
            if method == "new shared memory":
                nbytes, name = message
                block = shared_memory.SharedMemory(name=name)  # attach to this round's block
                view = np.ndarray(nbytes, dtype=np.uint8, buffer=block.buf)
                reply = (len(view), checksum(view))
                del view
                block.close()
            else:
                nbytes = message
                if method == "pipe":
                    payload = np.frombuffer(data.recv_bytes(), dtype=np.uint8)  # raw bytes
                elif method == "queue":
                    payload = data.get()  # a pickled NumPy array
                else:
                    payload = np.ndarray(nbytes, dtype=np.uint8, buffer=shm.buf)  # a view
                reply = (len(payload), checksum(payload))
                del payload
            control.send(reply)
    finally:
        if shm is not None:
            shm.close()


def transfer_seconds(method: str, sizes: Sequence[int], rounds: int = 3) -> dict[int, float]:
    """Seconds to hand a fresh ``size``-byte NumPy array to a child that reads all of it.

    ``method``: ``"pipe"`` (``send_bytes``), ``"queue"`` (``put`` of the array),
    ``"shared memory"`` (copy into a ``SharedMemory`` block made once, which the child
    reads in place) or ``"new shared memory"`` (every round a new block: create it, copy
    the data in, the child attaches and reads, then close and unlink it). Each round the
    parent changes the data, hands it over and waits for the child's reply, which carries
    the sum of every byte; the result is the fastest of ``rounds`` rounds (after one
    warm-up round). One child (default start method) serves all sizes.
    """
    from multiprocessing import shared_memory

    import numpy as np

    if method not in TRANSFER_METHODS:
        raise ValueError(f"method must be one of {TRANSFER_METHODS}, got {method!r}")
    sizes = [_check_count(size, "sizes", minimum=1) for size in sizes]
    if not sizes:
        raise ValueError("sizes must not be empty")
    _check_count(rounds, "rounds", minimum=1)
    control, child_control = multiprocessing.Pipe()
    data_in, data_out = multiprocessing.Pipe(duplex=False) if method == "pipe" else (None, None)
    q = multiprocessing.Queue() if method == "queue" else None
    shm = (
        shared_memory.SharedMemory(create=True, size=max(sizes))
        if method == "shared memory"
        else None
    )
    child = multiprocessing.Process(
        target=_sink,
        args=(method, data_in if method == "pipe" else q, child_control, shm and shm.name),
        name=f"sink-{method}",
    )
    best: dict[int, float] = {}
    try:
        child.start()
        child_control.close()
        if not control.poll(60) or control.recv() != "ready":
            raise RuntimeError(f"the {method} child did not start")
        for size in sizes:
            payload = np.ones(size, dtype=np.uint8)
            view = np.ndarray(size, dtype=np.uint8, buffer=shm.buf) if shm else None
            times = []
            for i in range(rounds + 1):
                payload[0], payload[-1] = i % 256, (i * 7) % 256
                block = None
                start = time.perf_counter()
                if method == "new shared memory":
                    block = shared_memory.SharedMemory(create=True, size=size)
                    np.ndarray(size, dtype=np.uint8, buffer=block.buf)[:] = payload
                    control.send((size, block.name))
                elif method == "shared memory":
                    view[:] = payload  # write the data first, then tell the child
                    control.send(size)
                else:
                    control.send(size)  # the child waits for this before reading the data
                    if method == "pipe":
                        data_out.send_bytes(payload)
                    else:
                        q.put(payload)
                reply = control.recv()
                if block is not None:
                    block.close()
                    block.unlink()
                times.append(time.perf_counter() - start)
                if tuple(reply) != (size, checksum(payload)):
                    raise RuntimeError(
                        f"the {method} child received {reply}, not this round's data"
                    )
            del view
            best[size] = min(times[1:])
        control.send(None)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
            child.join()
        for end in (control, data_in, data_out):
            if end is not None:
                end.close()
        if q is not None:
            q.close()
            q.join_thread()
        if shm is not None:
            shm.close()
            shm.unlink()
    return best


# --- 6. Oversubscription ---------------------------------------------------------------


def blas_threads(_: Any = None) -> int:
    """How many threads NumPy's BLAS in this process may use (0 if none was found).

    Imports NumPy first, so that its BLAS library is loaded. The argument is ignored (so
    the function works with ``map``).
    """
    import numpy  # noqa: F401  (loads the BLAS library)
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts, default=0)


def one_blas_thread() -> None:
    """Pool initializer: limit this worker's BLAS to one thread, for the worker's life."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


# --- 7. How many workers? --------------------------------------------------------------


# The CPU count and container quotas live in helpers.work (usable_cpus, cgroup_cpu_limit).


# --- 8. Memory per worker --------------------------------------------------------------


def _private_bytes() -> int:
    import psutil

    return psutil.Process().memory_full_info().uss


def private_memory(_: Any = None) -> int:
    """Import NumPy (as a worker would), then return this process's private memory (USS, bytes)."""
    import numpy  # noqa: F401

    return _private_bytes()


def memory_counts(data: Any, line_up: Any, results: Any = None) -> dict[str, int] | None:
    """Read all of ``data`` (a NumPy array), then measure this process's memory (Linux).

    Waits at the Barrier ``line_up`` before measuring and again after, so that every
    process sharing the data is alive while each one measures. Returns (or, with
    ``results``, puts there) ``{"rss": ..., "uss": ..., "pss": ...}`` in bytes.
    """
    import psutil

    data.sum()
    line_up.wait()
    info = psutil.Process().memory_full_info()
    counts = {"rss": info.rss, "uss": info.uss, "pss": info.pss}
    line_up.wait()
    if results is None:
        return counts
    results.put(counts)
    return None


def private_memory_after(data: Any, action: str, results: Any) -> None:
    """Child: do ``action`` with ``data``, put the growth of this process's private memory
    (USS, bytes) on ``results``.

    ``action``: ``"nothing"``; ``"read"`` (loop over the items, which writes each item's
    reference count); ``"sum"`` (``data.sum()`` of a NumPy array: reads only);
    ``"collect"`` (``gc.collect()``: the collector writes to every object it tracks).
    """
    import gc

    gc.enable()  # a child re-enables the collector that its parent disabled before forking
    if action not in ("nothing", "read", "sum", "collect"):
        raise ValueError(f"action must be nothing, read, sum or collect, got {action!r}")
    before = _private_bytes()
    if action == "read":
        for _item in data:
            pass
    elif action == "sum":
        data.sum()
    elif action == "collect":
        gc.collect()
    results.put(_private_bytes() - before)


# --- 9. More tools ---------------------------------------------------------------------


def profiled_busy_sum(n: int, folder: str) -> int:
    """``busy_sum(n)`` under cProfile; the statistics go to a new file in ``folder``.

    One file per task (``<pid>-<counter>.prof``), which the parent merges with
    ``pstats.Stats(*files)``.
    """
    import cProfile
    import os

    _check_count(n, "n")
    if not isinstance(folder, str) or not os.path.isdir(folder):
        raise ValueError(f"folder must be an existing folder, got {folder!r}")
    with cProfile.Profile() as profiler:
        result = busy_sum(n)
    name = f"{os.getpid()}-{time.perf_counter_ns()}.prof"
    profiler.dump_stats(os.path.join(folder, name))
    return result
