"""Unit tests for chapter 11's workers (helpers.beyond) and exercise checks."""

import concurrent.futures
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky import get_reusable_executor

from helpers import beyond, timeline
from helpers.beyond import BlockResult, block_total, row_blocks
from helpers.checks import ExerciseFailed
from helpers.checks.beyond import BATCH, BLOCK_ROWS, check_row_totals, check_run_batch
from helpers.futures import checked_sqrt


@pytest.fixture(scope="module", autouse=True)
def stop_loky_workers():
    """loky keeps its workers alive after each test; stop them so later tests (and
    checks that count this process's children) start from none."""
    yield
    get_reusable_executor().shutdown(wait=True)


def test_array_kind():
    a = np.ones(3)
    assert beyond.array_kind(a) == ("ndarray", True)
    a.flags.writeable = False
    assert beyond.array_kind(a) == ("ndarray", False)
    with pytest.raises(TypeError, match="a must be a NumPy array"):
        beyond.array_kind([1, 2])


def test_block_total_and_row_blocks():
    data = np.arange(20.0).reshape(10, 2)
    result = block_total(data, 2, 5)
    assert result == BlockResult(2, 5, float(data[2:5].sum()), False, os.getpid())
    assert row_blocks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert row_blocks(0, 4) == []
    with pytest.raises(ValueError, match="start <= stop"):
        block_total(data, 5, 2)
    with pytest.raises(ValueError, match="stop"):
        block_total(data, 0, 11)
    with pytest.raises(TypeError, match="data"):
        block_total(data.tolist(), 0, 1)
    with pytest.raises(TypeError, match="start"):
        block_total(data, 0.5, 1)
    with pytest.raises(ValueError, match="block"):
        row_blocks(10, 0)


def test_block_total_sees_a_memmap(tmp_path):
    mm = np.memmap(tmp_path / "a.dat", dtype=np.float64, shape=(4, 2), mode="w+")
    mm[:] = 1.0
    assert block_total(mm, 0, 4).memmapped is True


def test_fill_squares():
    out = np.zeros(10, dtype=np.int64)
    assert beyond.fill_squares(out, 3, 6) == os.getpid()
    assert out.tolist() == [0, 0, 0, 9, 16, 25, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="stop"):
        beyond.fill_squares(out, 0, 11)
    read_only = np.zeros(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        beyond.fill_squares(read_only, 0, 1)


def test_library_pids_follow_parallel_config():
    with parallel_config(backend="threading"):
        assert beyond.library_pids(3) == {os.getpid()}
    with pytest.raises(ValueError, match="n_tasks"):
        beyond.library_pids(0)


def test_thread_limits_and_random_draw():
    assert set(beyond.thread_limits()) == set(beyond.THREAD_LIMIT_VARIABLES)
    assert 0 <= beyond.random_draw() < 1


def test_task_stream_spans():
    records = [
        {
            "worker": "tcp://127.0.0.1:1",
            "key": "slow_square-abc",
            "startstops": (
                {"action": "transfer", "start": 99.0, "stop": 100.0},
                {"action": "compute", "start": 100.0, "stop": 100.5},
            ),
        },
        {
            "worker": "tcp://127.0.0.1:2",
            "key": "other-def",
            "startstops": ({"action": "compute", "start": 100.25, "stop": 100.375},),
        },
    ]
    pids = {"tcp://127.0.0.1:1": 11, "tcp://127.0.0.1:2": 22}
    spans = beyond.task_stream_spans(records, pids, wall_to_perf=-90, labels={"other-def": "x"})
    assert [(s.label, s.pid, s.start, s.end) for s in spans] == [
        ("slow_square", 11, 10.0, 10.5),
        ("x", 22, 10.25, 10.375),
    ]
    assert all(isinstance(s, timeline.Span) for s in spans)
    assert timeline.max_overlap(spans) == 2
    with pytest.raises(ValueError, match="no entry for worker"):
        beyond.task_stream_spans(records, {}, wall_to_perf=0)
    with pytest.raises(TypeError, match="wall_to_perf"):
        beyond.task_stream_spans(records, pids, wall_to_perf="0")
    with pytest.raises(TypeError, match="records"):
        beyond.task_stream_spans([1], pids, wall_to_perf=0)


def test_wait_for_scheduler_file(tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text('{"address": "tcp://127.0.0.1:1234"}')
    assert beyond.wait_for_scheduler_file(path, timeout=1) == "tcp://127.0.0.1:1234"
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        beyond.wait_for_scheduler_file(tmp_path / "missing.json", timeout=0.2)
    assert time.monotonic() - start < 2
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait(timeout=30)
    with pytest.raises(RuntimeError, match="code 3"):
        beyond.wait_for_scheduler_file(tmp_path / "missing.json", timeout=5, process=exited)
    with pytest.raises(ValueError, match="timeout"):
        beyond.wait_for_scheduler_file(path, timeout=0)
    with pytest.raises(TypeError, match="path"):
        beyond.wait_for_scheduler_file(3, timeout=1)


# --- exercise 1: check_row_totals ------------------------------------------------------


def right_row_totals(data):
    blocks = row_blocks(len(data), BLOCK_ROWS)
    return Parallel(n_jobs=2)(delayed(block_total)(data, start, stop) for start, stop in blocks)


def test_check_row_totals_passes_the_right_answer(capsys):
    check_row_totals(right_row_totals)
    assert capsys.readouterr().out.startswith("Correct:")


def sliced_in_parent(data):
    blocks = row_blocks(len(data), BLOCK_ROWS)
    return Parallel(n_jobs=2)(
        delayed(block_total)(data[start:stop], 0, stop - start) for start, stop in blocks
    )


def no_memmapping(data):
    blocks = row_blocks(len(data), BLOCK_ROWS)
    return Parallel(n_jobs=2, max_nbytes=None)(
        delayed(block_total)(data, start, stop) for start, stop in blocks
    )


def on_threads(data):
    blocks = row_blocks(len(data), BLOCK_ROWS)
    return Parallel(n_jobs=2, backend="threading")(
        delayed(block_total)(data, start, stop) for start, stop in blocks
    )


def missing_blocks(data):
    return right_row_totals(data)[:-1]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda data: None, "returned None"),
        (lambda data: [1.0, 2.0], "BlockResult"),
        (missing_blocks, "don't match row_blocks"),
        (sliced_in_parent, "don't match row_blocks"),
        (no_memmapping, "pickled copies"),
        (on_threads, "threading backend"),
    ],
)
def test_check_row_totals_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_row_totals(wrong)
    assert hint in str(info.value)


def sliced_with_true_rows(data):
    """Slices in the parent, but reports the true row range: totals right, not memmapped."""
    blocks = row_blocks(len(data), BLOCK_ROWS)
    results = Parallel(n_jobs=2)(
        delayed(block_total)(data[start:stop], 0, stop - start) for start, stop in blocks
    )
    return [r._replace(start=s, stop=e) for r, (s, e) in zip(results, blocks, strict=True)]


def test_check_row_totals_says_slices_are_pickled():
    with pytest.raises(ExerciseFailed, match="pickled copies"):
        check_row_totals(sliced_with_true_rows)


# --- exercise 2: check_run_batch -------------------------------------------------------


def right_run_batch(executor, values):
    futures = {executor.submit(checked_sqrt, v): v for v in values}
    results, errors = {}, {}
    for future in concurrent.futures.as_completed(futures, timeout=60):
        if future.exception() is None:
            results[futures[future]] = future.result()
        else:
            errors[futures[future]] = future.exception()
    return results, errors


def test_check_run_batch_passes_the_right_answer(capsys):
    check_run_batch(right_run_batch)
    assert capsys.readouterr().out.startswith("Correct:")


def with_map(executor, values):
    return dict(zip(values, executor.map(checked_sqrt, values), strict=True)), {}


def without_executor(executor, values):
    results, errors = {}, {}
    for v in values:
        try:
            results[v] = checked_sqrt(v)
        except ValueError as exc:
            errors[v] = exc
    return results, errors


def messages(executor, values):
    results, errors = right_run_batch(executor, values)
    return results, {v: str(e) for v, e in errors.items()}


def drops_errors(executor, values):
    return right_run_batch(executor, values)[0], {}


def as_lists(executor, values):
    results, errors = right_run_batch(executor, values)
    return list(results.values()), list(errors.values())


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda executor, values: None, "returned None"),
        (with_map, "re-raises the first failure"),
        (without_executor, "never used the executor"),
        (messages, "exceptions themselves"),
        (drops_errors, "errors has keys []"),
        (as_lists, "should be dicts"),
    ],
)
def test_check_run_batch_fails_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed) as info:
        check_run_batch(wrong)
    assert hint in str(info.value)


def test_batch_has_failures():
    assert any(x < 0 for x in BATCH) and any(x >= 0 for x in BATCH)
    assert all(math.isfinite(x) for x in BATCH)
