"""Checks for the exercises of chapter 11 (beyond one machine: joblib and Dask)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import numpy as np

from helpers.beyond import BlockResult, row_blocks
from helpers.checks import expect, fail, passed

__all__ = ["ROWS", "COLUMNS", "BLOCK_ROWS", "BATCH", "check_row_totals", "check_run_batch"]

# Exercise 1's array: 4 MiB of float64, in blocks of 0.25 MiB (under joblib's 1 MB max_nbytes).
ROWS, COLUMNS, BLOCK_ROWS = 512, 1024, 32


def check_row_totals(row_totals: Callable[[np.ndarray], Any]) -> None:
    """Exercise 1: ``row_totals(data)`` runs ``block_total`` on joblib, memory-mapped.

    The check calls it with a ``ROWS x COLUMNS`` float64 array (4 MiB). It must return
    the list of :class:`helpers.beyond.BlockResult` that ``block_total(data, start,
    stop)`` produced for the blocks of ``row_blocks(ROWS, BLOCK_ROWS)``, computed in
    worker processes that received ``data`` memory-mapped.
    """
    expect(callable(row_totals), "pass your function itself: check_row_totals(row_totals)")
    data = np.arange(ROWS * COLUMNS, dtype=np.float64).reshape(ROWS, COLUMNS)
    blocks = row_blocks(ROWS, BLOCK_ROWS)
    # joblib writes memory-mapped copies to a folder; use one this check removes.
    from joblib import parallel_config

    with tempfile.TemporaryDirectory(prefix="course-check-") as folder:
        with parallel_config(temp_folder=folder):
            answer = row_totals(data)
    expect(answer is not None, "row_totals returned None: return the list that Parallel gives")
    expect(
        isinstance(answer, (list, tuple)) and all(isinstance(r, BlockResult) for r in answer),
        "return the list of what block_total returned for each block "
        f"(BlockResult values), got {type(answer).__name__}",
    )
    got = sorted((r.start, r.stop) for r in answer)
    expect(
        got == blocks,
        f"your blocks {got[:3]}... don't match row_blocks({ROWS}, {BLOCK_ROWS}): call "
        "block_total(data, start, stop) once for each (start, stop) it gives",
    )
    for r in answer:
        want = float(data[r.start : r.stop].sum())
        expect(
            math.isclose(r.total, want),
            f"block {r.start}:{r.stop} summed to {r.total}, expected {want}: pass the whole "
            "array and the block's own start and stop",
        )
    if {r.pid for r in answer} == {os.getpid()}:
        fail(
            "every block ran in this process (the threading backend?): use joblib's default "
            "backend, loky, which runs worker processes"
        )
    if not all(r.memmapped for r in answer):
        fail(
            "the workers received pickled copies, not a memory-mapped array. joblib memory-"
            "maps an argument only when it is an array larger than max_nbytes (1 MB by "
            "default): pass the whole array data (4 MiB), not data[start:stop] (a block is "
            "256 KiB), and keep max_nbytes at its default; multiprocessing.Pool never does this"
        )
    passed(
        f"{len(answer)} blocks summed in {len({r.pid for r in answer})} worker process(es), "
        "each reading the same memory-mapped array."
    )


# The batch check_run_batch gives run_batch: two bad inputs among good ones.
BATCH = (4, -1, 9, 2.25, -9, 16)


class _CountingExecutor(Executor):
    """Wraps an executor and counts the calls it was asked to run."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.calls = 0

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.submit(fn, *args, **kwargs)

    def map(self, fn: Callable, *iterables: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.map(fn, *iterables, **kwargs)

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        pass  # the check owns the executors it passes


def _judge_batch(run_batch: Callable, executor: Executor, where: str) -> None:
    counting = _CountingExecutor(executor)
    try:
        answer = run_batch(counting, list(BATCH))
    except ValueError as exc:
        fail(
            f"run_batch raised {exc!r} on {where}: executor.map (or result() without a "
            "check) re-raises the first failure and the other results are lost. Submit one "
            "future per value and ask each future for its exception() first."
        )
    expect(answer is not None, "run_batch returned None: return (results, errors) at the end")
    expect(counting.calls > 0, f"run_batch never used the executor it was given ({where})")
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        f"run_batch should return a tuple (results, errors), got {type(answer).__name__}",
    )
    results, errors = answer
    expect(
        isinstance(results, dict) and isinstance(errors, dict),
        "results and errors should be dicts keyed by the input value",
    )
    good = {x: math.sqrt(x) for x in BATCH if x >= 0}
    bad = {x for x in BATCH if x < 0}
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


def check_run_batch(run_batch: Callable[[Executor, list], Any]) -> None:
    """Exercise 2: ``run_batch(executor, values)`` works on any executor, Dask's included.

    The check runs it on a ``ThreadPoolExecutor`` and then on the executor of a small
    Dask cluster of its own (scheduler and 2 workers in this process), with
    :data:`BATCH`; both times it must return ``(results, errors)``: dicts mapping each
    value to ``checked_sqrt(value)`` or to the exception that call raised.
    """
    import logging

    from dask.distributed import Client, LocalCluster

    expect(callable(run_batch), "pass your function itself: check_run_batch(run_batch)")
    with ThreadPoolExecutor(max_workers=2) as executor:
        _judge_batch(run_batch, executor, "a ThreadPoolExecutor")
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
        _judge_batch(run_batch, client.get_executor(), "a Dask executor")
    n_bad = sum(1 for x in BATCH if x < 0)
    n_good = len(BATCH) - n_bad
    passed(
        f"{n_good} results and {n_bad} errors collected, the same on threads and on a "
        "Dask cluster: only the executor changed."
    )
