"""Checks for the exercises of chapter 11 (beyond one machine: joblib and Dask)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from helpers import beyond
from helpers.beyond import BlockResult, row_blocks
from helpers.checks import call_with_timeout, expect, fail, passed

__all__ = [
    "FILE_CASES",
    "BATCH",
    "OTHER_BATCH",
    "TASK_SECONDS",
    "check_file_row_totals",
    "check_run_batch",
]

# Exercise 1: (shape, dtype, rows per block) of the .npy files the check writes. The first
# is over joblib's max_nbytes (1 MiB), the others far under it; the last has one block.
FILE_CASES = (
    ((600, 1024), np.float64, 64),
    ((5, 3), np.int32, 2),
    ((40, 10), np.float32, 100),
)
ANSWER_SECONDS = 60  # an answer that takes longer than this is reported as stuck


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_BLOCK_TOTAL = beyond.block_total  # the real one, while the check swaps in a recording one


class _RecordedBlockTotal:
    """``block_total`` that leaves a note of every call in ``folder`` (one file per call,
    written in the process that ran it), so the check can tell the results block_total
    returned in a worker from results made some other way."""

    __name__ = "block_total"
    __qualname__ = "block_total"
    __doc__ = beyond.block_total.__doc__

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, *args: Any, **kwargs: Any) -> BlockResult:
        import json
        import uuid

        result = _BLOCK_TOTAL(*args, **kwargs)
        note = Path(self.folder) / f"{os.getpid()}-{uuid.uuid4().hex}.json"
        with contextlib.suppress(OSError):  # the check is over (a stuck answer)
            note.write_text(json.dumps([getattr(v, "item", lambda v=v: v)() for v in result]))
        return result


def _recorded_calls(folder: str) -> set[tuple]:
    import json

    calls = set()
    for note in Path(folder).glob("*.json"):
        try:
            calls.add(tuple(json.loads(note.read_text())))
        except ValueError:  # a note still being written: the call had not returned
            pass
    return calls


@contextlib.contextmanager
def _recording(file_row_totals: Callable, folder: str) -> Iterator[None]:
    """Replace ``block_total`` by a recording one, in the answer's globals (where a notebook
    cell finds it) and in :mod:`helpers.beyond`, until the block ends (also when the answer
    is stuck: the learner's ``block_total`` comes back either way)."""
    recorder = _RecordedBlockTotal(folder)
    namespace = getattr(file_row_totals, "__globals__", {})
    swap = namespace.get("block_total") is _BLOCK_TOTAL
    beyond.block_total = recorder  # type: ignore[assignment]
    if swap:
        namespace["block_total"] = recorder
    try:
        yield
    finally:
        beyond.block_total = _BLOCK_TOTAL  # type: ignore[assignment]
        if swap and namespace.get("block_total") is recorder:
            namespace["block_total"] = _BLOCK_TOTAL


_SCRATCH_RETRY_SECONDS = 2.0


@contextlib.contextmanager
def _scratch_folder(prefix: str) -> Iterator[str]:
    """A temporary folder, removed at the end even while workers of an abandoned answer (a
    joblib generator nobody consumed) still write into it: ``TemporaryDirectory`` would
    raise ``OSError`` (directory not empty) at the learner instead of the check's hint.
    Removal is retried for ``_SCRATCH_RETRY_SECONDS``, then left; it never raises."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    finally:
        deadline = time.monotonic() + _SCRATCH_RETRY_SECONDS
        while True:
            shutil.rmtree(folder, ignore_errors=True)  # removes what it can, never raises
            if not os.path.exists(folder) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)


def _judge_file(file_row_totals: Callable, path: Path, block: int, joblib_tmp: str) -> int:
    """Run the answer on one file; return the number of blocks it summed."""
    from joblib import parallel_config

    data = np.load(path)  # the check's own copy, to compute the expected totals
    before = _digest(path)
    reads: dict[str, int] = {}

    notes = tempfile.mkdtemp(prefix="calls-", dir=joblib_tmp)

    def in_check_folder(*args: Any) -> Any:
        # joblib's settings are per thread: set the folder in the thread that runs the answer
        # (and count the bytes read there, by the answer's own code)
        with parallel_config(temp_folder=joblib_tmp):
            read_before = _bytes_read()
            try:
                return file_row_totals(*args)
            finally:
                read_after = _bytes_read()
                if read_before is not None and read_after is not None:
                    reads["during"] = read_after - read_before

    with _recording(file_row_totals, notes):
        outcome = call_with_timeout(in_check_folder, (str(path), block), ANSWER_SECONDS)
    read_during = reads.get("during")
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"file_row_totals raised {type(exc).__name__}: {exc}")
    expect(bool(outcome), f"file_row_totals did not return within {ANSWER_SECONDS} s")
    answer = outcome["value"]
    expect(answer is not None, "file_row_totals returned None: return the list of results")
    expect(
        isinstance(answer, (list, tuple)) and all(isinstance(r, BlockResult) for r in answer),
        "return the list of what block_total returned for each block "
        f"(BlockResult values), got {type(answer).__name__}",
    )
    expect(_digest(path) == before, "your answer changed the file: the workers only read it")
    want_blocks = row_blocks(len(data), block)
    got = [(r.start, r.stop) for r in answer]
    if sorted(got) != want_blocks:
        first = next(
            (i for i, (g, w) in enumerate(zip(sorted(got), want_blocks, strict=False)) if g != w),
            min(len(got), len(want_blocks)),
        )
        fail(
            f"for a file of {len(data)} rows and block={block} you returned {len(got)} "
            f"block(s), row_blocks({len(data)}, {block}) gives {len(want_blocks)}; the first "
            f"difference is at position {first}: yours "
            f"{sorted(got)[first] if first < len(got) else 'none'}, expected "
            f"{want_blocks[first] if first < len(want_blocks) else 'none'}. Call "
            "block_total(data, start, stop) once per (start, stop), on the whole array"
        )
    expect(
        got == want_blocks,
        f"your results come in another order than the blocks ({got[:4]}...): return them "
        "in the order of row_blocks, the first block first",
    )
    for r in answer:
        want = float(data[r.start : r.stop].sum())
        expect(
            math.isclose(r.total, want, rel_tol=1e-6),
            f"block {r.start}:{r.stop} summed to {r.total}, expected {want}: are you reading "
            "the file's header bytes as data? Let NumPy open the .npy file",
        )
    if answer and {r.pid for r in answer} == {os.getpid()}:
        fail(
            "every block ran in this process (the threading backend?): use joblib's "
            "default backend, loky, which runs worker processes"
        )
    real = os.path.realpath(path)
    if read_during is not None and data.nbytes > 2**20 and read_during > data.nbytes // 2:
        fail(
            f"your process read {read_during:,} bytes while it handled a "
            f"{data.nbytes:,}-byte file: it read the array into memory. Open the file "
            "without reading it, and leave the reading to the workers"
        )
    if not all(r.memmapped for r in answer):
        fail(
            f"with a {data.nbytes:,}-byte file block_total received arrays held in memory, "
            "not a map of the file: your process read the file and joblib pickled it, or a "
            "worker read the whole file. Open the file without reading it, so that nothing "
            "is read until a worker touches a row"
        )
    if {r.source for r in answer} != {real}:
        fail(
            "the workers read a copy that joblib wrote to its temporary folder, not the "
            f"file itself: your process read the whole {data.nbytes:,}-byte array into "
            "memory first. Open the file without reading it (numpy.load has an option for "
            "that), so that joblib can hand the workers the file"
        )
    calls = _recorded_calls(notes)
    made_elsewhere = [r for r in answer if tuple(r) not in calls]
    expect(
        not made_elsewhere,
        f"{len(made_elsewhere)} of your {len(answer)} results (the first for rows "
        f"{made_elsewhere[0].start if made_elsewhere else 0}:"
        f"{made_elsewhere[0].stop if made_elsewhere else 0}) are not what a call of "
        "block_total in a worker returned: return block_total's results as they came back, "
        "unchanged",
    )
    return len(answer)


def _bytes_read() -> int | None:
    """Bytes the calling thread (Linux) or this process (Windows) has read with read()
    calls so far, else None.

    Pages of a memory-mapped file are not read() calls: they don't count. On Linux the
    count is the thread's own: a process's count also takes in what its children read once
    they exit (loky's workers, from an earlier answer), which would blame this answer.
    """
    import psutil

    try:
        with open("/proc/thread-self/io") as counters:
            fields = dict(line.split(":") for line in counters.read().splitlines())
        return int(fields["rchar"])
    except (OSError, KeyError, ValueError):
        pass
    proc = psutil.Process()
    if not hasattr(proc, "io_counters"):
        return None
    counters = proc.io_counters()
    return getattr(counters, "read_chars", None) or counters.read_bytes


def check_file_row_totals(file_row_totals: Callable[[str, int], Any]) -> None:
    """Exercise 1: ``file_row_totals(path, block)`` sums a ``.npy`` file's row blocks in
    joblib workers that read the file itself.

    The check writes :data:`FILE_CASES` to ``.npy`` files and calls the answer with each
    path (a str) and block size. It must return the list of
    :class:`helpers.beyond.BlockResult` that ``block_total(data, start, stop)`` produced
    for the blocks of ``row_blocks(rows, block)``, in that order, computed in worker
    processes that memory-mapped the file at ``path`` (not a pickled copy, not a temporary
    copy). While the answer runs, ``block_total`` (in the answer's globals and in
    :mod:`helpers.beyond`) notes every call, so results made without it are seen; the
    bytes the answer's own thread reads are counted, so reading the file into memory is.
    """
    expect(
        callable(file_row_totals),
        "pass your function itself: check_file_row_totals(file_row_totals)",
    )
    rng = np.random.default_rng(11)
    counts = []
    with (
        tempfile.TemporaryDirectory(prefix="course-check-") as folder,
        _scratch_folder("course-check-joblib-") as joblib_tmp,
    ):
        for i, (shape, dtype, block) in enumerate(FILE_CASES):
            path = Path(folder) / f"data-{i}.npy"
            np.save(path, (rng.random(shape) * 100).astype(dtype))
            counts.append(_judge_file(file_row_totals, path, block, joblib_tmp))
    passed(
        f"{sum(counts)} blocks of {len(FILE_CASES)} files summed in worker processes, each "
        "reading the file itself: nothing was pickled or copied, whatever the array's size."
    )


# Exercise 2: the batches check_run_batch gives run_batch (bad inputs among good ones).
BATCH = (4, -1, 9, 2.25, -9, 16)
# 4 and -1 again: an answer that keeps results from an earlier call must still submit them.
OTHER_BATCH = (0, 30.25, -0.5, 1e6, -100, 4, -1)
TASK_SECONDS = 0.2  # each call the check watches takes at least this long


class _RaisedOnExecutor(ValueError):
    """The ValueError a call raised on the executor (the check's marker)."""


_spans: list[tuple[float, float]] = []
_spans_lock = threading.Lock()


def _observed(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` as the learner asked, slowed down and timed, its outcome marked."""
    start = time.perf_counter()
    time.sleep(TASK_SECONDS)
    try:
        value = fn(*args, **kwargs)
    except ValueError as exc:
        raise _RaisedOnExecutor(*exc.args) from None
    finally:
        with _spans_lock:
            _spans.append((start, time.perf_counter()))
    return _marked(value)


def _marked(value: Any) -> Any:
    """``value`` with the exceptions in it marked as having come from the executor
    (inside tuples, lists and dicts too, for answers that wrap checked_sqrt)."""
    if isinstance(value, BaseException):
        value._course_from_executor = True  # type: ignore[attr-defined]
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_marked(v) for v in value)
    if isinstance(value, dict):
        return {k: _marked(v) for k, v in value.items()}
    return value


def _from_executor(value: Any) -> bool:
    return isinstance(value, _RaisedOnExecutor) or getattr(value, "_course_from_executor", False)


def _same(arg: Any, value: Any) -> bool:
    try:
        return bool(arg == value)
    except Exception:  # an argument that can't be compared (a NumPy array, ...)
        return False


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


class _WatchingExecutor(Executor):
    """Wraps an executor: counts calls and shutdowns, and times every call it runs."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.calls = 0
        self.shutdowns = 0
        self.arguments: list[Any] = []  # every argument of every call submitted

    def _note(self, args: Any) -> None:
        for arg in args:
            if isinstance(arg, (tuple, list, set, frozenset)):
                self._note(arg)
            else:
                self.arguments.append(arg)

    def submitted(self, value: Any) -> bool:
        return any(_same(arg, value) for arg in self.arguments)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self._note([*args, *kwargs.values()])
        return self.inner.submit(_observed, fn, *args, **kwargs)

    def map(self, fn: Callable, *iterables: Any, **kwargs: Any) -> Any:
        import functools

        self.calls += 1
        iterables = tuple(list(iterable) for iterable in iterables)
        for iterable in iterables:
            self._note(iterable)
        return self.inner.map(functools.partial(_observed, fn), *iterables, **kwargs)

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        self.shutdowns += 1  # the check owns the executors it passes: it stays usable


def _judge_batch(
    run_batch: Callable, executor: Executor, where: str, values: tuple, *, overlap: bool
) -> None:
    watching = _WatchingExecutor(executor)
    with _spans_lock:
        _spans.clear()
    outcome = call_with_timeout(run_batch, (watching, list(values)), ANSWER_SECONDS)
    if isinstance(outcome.get("error"), ValueError):
        fail(
            f"run_batch raised {outcome['error']!r} on {where}: executor.map (or result() "
            "without a check) re-raises the first failure and the other results are lost. "
            "Ask each future for its exception() first."
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"run_batch raised {type(exc).__name__}: {exc} (on {where})")
    expect(bool(outcome), f"run_batch did not return within {ANSWER_SECONDS} s on {where}")
    answer = outcome["value"]
    expect(answer is not None, "run_batch returned None: return (results, errors) at the end")
    expect(
        watching.calls > 0 or not values,
        f"run_batch never used the executor it was given ({where})",
    )
    unsent = [x for x in values if not watching.submitted(x)]
    expect(
        not unsent,
        f"run_batch didn't submit {unsent} to the executor it was given ({where}): every "
        "value of each call as a call of its own, a bad one too, even one an earlier "
        "call already saw",
    )
    expect(
        watching.shutdowns == 0,
        f"run_batch shut down the executor it was given ({where}): the caller owns it and "
        "may still need it. Don't close what you didn't create",
    )
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        f"run_batch should return a tuple (results, errors), got {type(answer).__name__}",
    )
    results, errors = answer
    expect(
        isinstance(results, dict) and isinstance(errors, dict),
        "results and errors should be dicts keyed by the input value",
    )
    good = {x: math.sqrt(x) for x in values if x >= 0}
    bad = {x for x in values if x < 0}
    expect(
        set(errors) == bad,
        f"errors has keys {sorted(errors)}; the values whose task failed are {sorted(bad)}",
    )
    expect(
        all(isinstance(e, ValueError) for e in errors.values()),
        f"errors should hold the exceptions themselves (ValueError), got {list(errors.values())}",
    )
    expect(
        results == good,
        f"results is {results}; expected {good} (value -> future.result() for the tasks "
        "that succeeded)",
    )
    expect(
        all(_from_executor(e) for e in errors.values()),
        f"some errors are not the exceptions the executor's calls raised ({where}): "
        "take each one from its own future",
    )
    if overlap:
        with _spans_lock:
            spans = list(_spans)
        expect(
            _max_overlap(spans) >= 2,
            f"no two calls ran at the same time on {where}, which has 2 workers: your "
            "function waits for each call to finish before it hands the executor the next "
            "value, so the batch takes as long as running it in a loop",
        )


def check_run_batch(run_batch: Callable[[Executor, list], Any]) -> None:
    """Exercise 2: ``run_batch(executor, values)`` works on any executor, Dask's included.

    The check runs it on a ``ThreadPoolExecutor`` (2 workers) and on the executor of a
    small Dask cluster of its own (scheduler and 2 workers in this process), with
    :data:`BATCH`, :data:`OTHER_BATCH` and an empty batch. Every call the executor runs
    takes at least :data:`TASK_SECONDS`, and at least two must run at the same time. Each
    time ``run_batch`` must return ``(results, errors)``: dicts mapping each value to
    ``checked_sqrt(value)`` or to the exception that call raised, both taken from the
    futures; it must not shut the executor down.
    """
    import logging

    from dask.distributed import Client, LocalCluster

    expect(callable(run_batch), "pass your function itself: check_run_batch(run_batch)")
    with ThreadPoolExecutor(max_workers=2) as executor:
        _judge_batch(run_batch, executor, "a ThreadPoolExecutor", BATCH, overlap=True)
        _judge_batch(run_batch, executor, "a ThreadPoolExecutor", (), overlap=False)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        dask_executor = client.get_executor(pure=False)
        _judge_batch(run_batch, dask_executor, "a Dask executor", OTHER_BATCH, overlap=True)
    n_bad = sum(1 for x in BATCH + OTHER_BATCH if x < 0)
    n_good = len(BATCH + OTHER_BATCH) - n_bad
    passed(
        f"{n_good} results and {n_bad} errors collected, calls running side by side on "
        "threads and on a Dask cluster: only the executor changed."
    )
