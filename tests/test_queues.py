"""Unit tests for helpers.queues (chapter 04 workers) and helpers.checks.queues."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
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


def stage_right(inbox, outbox):
    while True:
        n = inbox.get()
        if n is None:
            outbox.put(None)
            return
        outbox.put(n * n)


def stage_no_sentinel(inbox, outbox):
    while True:
        n = inbox.get()
        if n is None:
            return
        outbox.put(n * n)


def stage_not_squared(inbox, outbox):
    while True:
        n = inbox.get()
        outbox.put(n)
        if n is None:
            return


def stage_skeleton(inbox, outbox):
    return None


def test_check_pipeline_passes_right_answer(capsys):
    check.check_pipeline(stage_right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "stage, hint",
    [
        (stage_no_sentinel, "sentinel"),
        (stage_not_squared, "fourth powers"),
        (stage_skeleton, "fourth powers"),
        (None, "define stage"),
    ],
)
def test_check_pipeline_fails_wrong_answers(stage, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_pipeline(stage, timeout=3.0)


def drain_right(q, processes, n_items):
    items = [q.get(timeout=30) for _ in range(n_items)]
    for p in processes:
        p.join()
    return items


def drain_join_first(q, processes, n_items):
    for p in processes:
        p.join()
    return [q.get() for _ in range(n_items)]


def drain_two_only(q, processes, n_items):
    items = [q.get(timeout=10) for _ in range(2)]
    for p in processes:
        p.join(timeout=1)
    return items


def drain_without_join(q, processes, n_items):
    return [q.get(timeout=30) for _ in range(n_items)]


def drain_skeleton(q, processes, n_items):
    return None


def test_check_drain_then_join_passes_right_answer(capsys):
    check.check_drain_then_join(drain_right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "func, hint",
    [
        (drain_join_first, "stuck"),
        (drain_two_only, "got 2 of 3"),
        (drain_without_join, "join every process"),
        (drain_skeleton, "returned None"),
        ("not a function", "define drain_then_join"),
    ],
)
def test_check_drain_then_join_fails_wrong_answers(func, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_drain_then_join(func, timeout=3.0)


def test_put_big_sets_put_returned():
    q, put_returned = queue.Queue(), threading.Event()
    queues.put_big(q, 10, put_returned)
    assert put_returned.is_set()
    pid, payload = q.get_nowait()
    assert pid == os.getpid() and payload == bytes(10)
