"""Unit tests for helpers.queues (chapter 04 workers) and helpers.checks.queues."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import Counter

import pytest

from helpers import queues
from helpers.checks import ExerciseFailed
from helpers.checks import queues as check

METHODS = multiprocessing.get_all_start_methods()


# ---- workers, run in the test process ----------------------------------------------------


def test_produce_and_consume_in_process():
    q, results = queue.Queue(), queue.Queue()
    queues.produce(q, "P", 5)
    q.put(None)
    queues.consume(q, results)
    assert results.get_nowait() == [("P", i) for i in range(5)]


def test_timed_producer_and_slow_consumer_record_spans():
    q, spans = queue.Queue(), queue.Queue()
    queues.timed_producer(q, 3, spans)
    queues.slow_consumer(q, 0.0, spans)
    labels = sorted(spans.get_nowait().label for _ in range(6))
    assert labels == ["put 0", "put 1", "put 2", "work 0", "work 1", "work 2"]


def test_work_queue_worker_marks_every_task_done():
    tasks, results = multiprocessing.JoinableQueue(), queue.Queue()
    for n in (2, 3, None):
        tasks.put(n)
    queues.work_queue_worker(tasks, results)
    tasks.join()  # returns at once: all three (including the sentinel) were marked done
    assert [results.get_nowait() for _ in range(2)] == [(2, 4), (3, 9)]


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: queues.put_one("not a queue", 1), TypeError),
        (lambda: queues.put_big(queue.Queue(), -1), ValueError),
        (lambda: queues.put_big(queue.Queue(), 1.5), TypeError),
        (lambda: queues.put_big(queue.Queue(), 10, put_returned="yes"), TypeError),
        (lambda: queues.produce(queue.Queue(), 7, 1), TypeError),
        (lambda: queues.produce(queue.Queue(), "P", 1, seconds=-1), ValueError),
        (lambda: queues.consume(queue.Queue(), None), TypeError),
        (lambda: queues.slow_consumer(queue.Queue(), "slow", queue.Queue()), TypeError),
        (lambda: queues.work_queue_worker(multiprocessing.SimpleQueue(), queue.Queue()), TypeError),
    ],
)
def test_workers_validate_arguments(call, exc):
    with pytest.raises(exc):
        call()


# ---- the lessons, in real processes under every start method ------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_join_before_drain_blocks_until_drained(method):
    ctx = multiprocessing.get_context(method)
    q, put_returned = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=queues.put_big, args=(q, 1_000_000, put_returned))
    p.start()
    assert put_returned.wait(timeout=10)  # put() returned; the process is now trying to exit
    p.join(timeout=0.5)
    assert p.is_alive()
    pid, payload = q.get(timeout=10)
    p.join(timeout=10)
    assert not p.is_alive() and p.exitcode == 0
    assert pid == p.pid and len(payload) == 1_000_000


@pytest.mark.parametrize("method", METHODS)
def test_cancel_join_thread_exits_and_loses_the_item(method):
    ctx = multiprocessing.get_context(method)
    q, lengths = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=queues.put_big_and_leave, args=(q, 1_000_000))
    p.start()
    p.join(timeout=10)
    assert p.exitcode == 0
    c = ctx.Process(target=queues.get_one, args=(q, lengths))
    c.start()
    with pytest.raises(queue.Empty):
        lengths.get(timeout=1.0)
    c.terminate()
    c.join()


@pytest.mark.parametrize("method", METHODS)
def test_producers_consumers_lose_nothing(method):
    ctx = multiprocessing.get_context(method)
    tasks, results = ctx.Queue(), ctx.Queue()
    producers = [ctx.Process(target=queues.produce, args=(tasks, f"P{i}", 30)) for i in range(2)]
    consumers = [ctx.Process(target=queues.consume, args=(tasks, results)) for _ in range(2)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        tasks.put(None)
    got = [results.get(timeout=20) for _ in consumers]
    for c in consumers:
        c.join()
    assert Counter(i for g in got for i in g) == Counter(
        (f"P{i}", n) for i in range(2) for n in range(30)
    )


# ---- exercise checks: pass on the right answer, fail on wrong ones -------------------------


def gather_right(q, producers):
    items, finished = [], 0
    while finished < len(producers):
        all_ended = all(p.exitcode is not None for p in producers)
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            if all_ended:
                break
            continue
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_right_is_alive_then_drain(q, producers):
    items, finished = [], 0
    while finished < len(producers) and any(p.is_alive() for p in producers):
        try:
            item = q.get(timeout=0.3)
        except queue.Empty:
            continue
        if item is None:
            finished += 1
        else:
            items.append(item)
    while finished < len(producers):  # every producer has ended: take what is left
        try:
            item = q.get(timeout=0.3)
        except queue.Empty:
            break
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_no_timeout(q, producers):
    items, finished = [], 0
    while finished < len(producers):
        item = q.get()
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_first_empty_ends(q, producers):
    items = []
    while True:
        try:
            item = q.get(timeout=1.0)
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)


def gather_until_all_ended_no_drain(q, producers):
    items = []
    while any(p.is_alive() for p in producers):
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is not None:
            items.append(item)
    return items


def gather_any_ended(q, producers):
    items, finished = [], 0
    while finished < len(producers):
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            if any(p.exitcode is not None for p in producers):
                break
            continue
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_join_then_drain(q, producers):
    for p in producers:
        p.join()
    items = []
    while True:
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)


def gather_slow_to_notice(q, producers):
    items, finished = [], 0
    while finished < len(producers):
        all_ended = all(p.exitcode is not None for p in producers)
        try:
            item = q.get(timeout=3)
        except queue.Empty:
            if all_ended:
                break
            continue
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_stops_once_one_crashed(q, producers):
    items, finished = [], 0
    while finished < len(producers):
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in producers):
                break
            continue
        if item is None:
            finished += 1
        else:
            items.append(item)
    return items


def gather_keeps_sentinels(q, producers):
    return [x for x in gather_right(q, producers)] + [None]


def gather_skeleton(q, producers):
    return None


@pytest.mark.parametrize("func", [gather_right, gather_right_is_alive_then_drain])
def test_check_gather_passes_right_answers(func, capsys):
    check.check_gather(func)
    assert capsys.readouterr().out.startswith("Correct:")
    assert not [p for p in multiprocessing.active_children() if "producer" in p.name]


@pytest.mark.parametrize(
    "func, hint",
    [
        (gather_skeleton, "returned None"),
        (gather_no_timeout, "crashed never sends its None"),
        (gather_first_empty_ends, "pauses 1.6 s"),
        (gather_until_all_ended_no_drain, "had all ended|Missing"),
        (gather_any_ended, "Missing"),
        (gather_join_then_drain, "did not return"),
        (gather_slow_to_notice, "notice sooner|did not return"),
        (gather_keeps_sentinels, "are not items"),
        (gather_stops_once_one_crashed, "Missing \\[\\('S', 0\\)\\]"),
    ],
)
def test_check_gather_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_gather(func, timeout=4.0)
    assert not [p for p in multiprocessing.active_children() if "producer" in p.name]


def test_check_gather_fails_the_skeleton_fast():
    start = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check.check_gather(gather_skeleton)
    assert time.perf_counter() - start < 1


def test_check_gather_rejects_a_non_function():
    with pytest.raises(TypeError, match="gather"):
        check.check_gather("gather")


def _start_block_workers(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=queues.make_block, args=(tasks, results))
        for _ in range(n_workers)
    ]
    for w in workers:
        w.start()
    for item in enumerate(sizes):
        tasks.put(item)
    for _ in workers:
        tasks.put(None)
    return tasks, results, workers


def blocks_right(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    blocks = [None] * len(sizes)
    for _ in sizes:
        index, block = results.get(timeout=30)
        blocks[index] = block
    for w in workers:
        w.join(timeout=30)
    return blocks


def blocks_right_dict(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    got = dict(results.get(timeout=30) for _ in sizes)
    for w in workers:
        w.join(timeout=30)
    return [got[i] for i in range(len(sizes))]


def blocks_join_first(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    for w in workers:
        w.join(timeout=30)
    got = dict(results.get(timeout=30) for _ in sizes)
    return [got[i] for i in range(len(sizes))]


def blocks_join_timeout_first(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    for w in workers:
        w.join(timeout=0.5)
    got = dict(results.get(timeout=30) for _ in sizes)
    return [got[i] for i in range(len(sizes))]


def blocks_arrival_order(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    got = [results.get(timeout=30)[1] for _ in sizes]
    for w in workers:
        w.join(timeout=30)
    return got


def blocks_terminate(sizes, n_workers):
    tasks, results, workers = _start_block_workers(sizes, n_workers)
    got = dict(results.get(timeout=30) for _ in sizes)
    for w in workers:
        w.terminate()
        w.join()
    return [got[i] for i in range(len(sizes))]


def blocks_in_parent(sizes, n_workers):
    return [bytes([i % 256]) * size for i, size in enumerate(sizes)]


def blocks_decoy_workers(sizes, n_workers):
    workers = [multiprocessing.Process(target=time.sleep, args=(0.1,)) for _ in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    return [bytes([i % 256]) * size for i, size in enumerate(sizes)]


def blocks_skeleton(sizes, n_workers):
    return None


@pytest.mark.parametrize("func", [blocks_right, blocks_right_dict])
def test_check_parallel_blocks_passes_right_answers(func, capsys):
    check.check_parallel_blocks(func)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "func, hint",
    [
        (blocks_skeleton, "returned None"),
        (blocks_arrival_order, "not in input order"),
        (blocks_join_first, "did not return"),
        (blocks_join_timeout_first, "not joined"),
        (blocks_terminate, "exited with codes"),
        (blocks_in_parent, "started 0 process"),
        (blocks_decoy_workers, "queues.make_block"),
    ],
)
def test_check_parallel_blocks_fails_wrong_answers(func, hint):
    before = set(multiprocessing.active_children())  # an earlier test's, not this check's
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_parallel_blocks(func, timeout=3.0)
    left = set(multiprocessing.active_children()) - before
    assert not [p for p in left if "resource" not in p.name]


def test_check_parallel_blocks_fails_the_skeleton_fast():
    start = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check.check_parallel_blocks(blocks_skeleton)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("method", METHODS)
def test_fragile_worker_dies_without_task_done_but_flushes_results(method):
    ctx = multiprocessing.get_context(method)
    jobs, results = ctx.JoinableQueue(), ctx.Queue()
    w = ctx.Process(target=queues.fragile_worker, args=(jobs, results, 2))
    w.start()
    for n in range(4):
        jobs.put(n)
    w.join(timeout=20)
    assert w.exitcode == 1
    assert [results.get(timeout=5) for _ in range(2)] == [(0, 0), (1, 1)]
    waiter = threading.Thread(target=jobs.join, daemon=True)
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive()  # items 2 and 3 were never marked done
    jobs.task_done()
    jobs.task_done()
    waiter.join(timeout=5)
    assert not waiter.is_alive()


def test_exercise_and_pool_workers_in_process():
    q = queue.Queue()
    queues.produce_then_sentinel(q, "P", 2)
    assert [q.get_nowait() for _ in range(3)] == [("P", 0), ("P", 1), None]
    tasks, results = queue.Queue(), queue.Queue()
    for item in [(0, 3), (300, 2), None]:
        tasks.put(item)
    queues.make_block(tasks, results)
    assert [results.get_nowait() for _ in range(2)] == [(0, bytes(3)), (300, bytes([44, 44]))]
    with pytest.raises(TypeError):
        queues.make_block("tasks", results)
    with pytest.raises(ValueError, match="poison"):
        queues.fragile_worker(multiprocessing.JoinableQueue(), results, None)
    with pytest.raises(TypeError, match="go"):
        queues.get_one(queue.Queue(), queue.Queue(), go="now")
    queues.init_results(results)
    assert queues.square_to_results(3) == os.getpid() and results.get_nowait() == (3, 9)
    assert queues.square_to(results, 4) == os.getpid() and results.get_nowait() == (4, 16)
    with pytest.raises(TypeError, match="results"):
        queues.init_results("not a queue")
    with pytest.raises(TypeError, match="n"):
        queues.square_to(results, "4")


@pytest.mark.parametrize("method", METHODS)
def test_produce_then_crash_flushes_then_dies_without_sentinel(method):
    ctx = multiprocessing.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=queues.produce_then_crash, args=(q, "C", 3))
    p.start()
    p.join(timeout=20)
    assert p.exitcode == 1
    assert [q.get(timeout=5) for _ in range(3)] == [("C", i) for i in range(3)]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)


def test_put_big_sets_put_returned():
    q, put_returned = queue.Queue(), threading.Event()
    queues.put_big(q, 10, put_returned)
    assert put_returned.is_set()
    pid, payload = q.get_nowait()
    assert pid == os.getpid() and payload == bytes(10)


def test_feeder_pickles_after_put_and_close_ends_get():
    q = multiprocessing.Queue()
    q.put(bytes(1_000_000))  # the feeder thread blocks on this until it is read
    order = ["pick"]
    q.put(order)
    order.append("pack")
    assert len(q.get(timeout=10)) == 1_000_000
    assert q.get(timeout=10) == ["pick", "pack"]  # pickled after the append
    q.put("waiting")
    q.close()
    q.join_thread()
    with pytest.raises(ValueError, match="is closed"):
        q.get(timeout=1)
    with pytest.raises(ValueError, match="is closed"):
        q.put("more")


def test_put_nowait_on_a_full_queue_raises_full():
    q = multiprocessing.Queue(maxsize=2)
    q.put_nowait(1)
    q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert [q.get(timeout=1), q.get(timeout=1)] == [1, 2]
    q.close()
