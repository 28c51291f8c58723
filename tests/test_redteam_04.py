"""Red team for chapter 04's exercise checks: wrong answers must fail, right ones pass.

Each case is an answer a learner might write, run through the check exactly as the
notebook's check cell calls it. Wrong answers must raise ``ExerciseFailed``; right ones
must pass. Every call runs under a watchdog, so a check that hangs fails the test instead
of the suite.
"""

import multiprocessing
import operator
import queue
import threading
import time

import numpy as np
import pytest
from redteam import expect

from helpers import queues
from helpers.checks import queues as check

# --- Exercise 1: gather(q, producers) -------------------------------------------------


def g_count_nones_blocking(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        item = q.get()  # waits forever for the crashed producer's None
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_count_nones_long_timeout(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        try:
            item = q.get(timeout=5)  # notices a dead producer only after 5 s
        except queue.Empty:
            break
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_idle_timeout(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        try:
            item = q.get(timeout=0.3)  # a pause of 0.3 s is taken for death
        except queue.Empty:
            break
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_empty_poll(q, producers):
    items = []
    while not q.empty():
        item = q.get()
        if item is not None:
            items.append(item)
    return items


def g_stop_first_dead(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        if any(p.exitcode not in (None, 0) for p in producers):
            break  # one crashed: give up on everyone
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_no_final_drain(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        if not any(p.is_alive() for p in producers):
            return items  # all ended: return without reading what they left in the queue
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_keeps_nones(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            if not any(p.is_alive() for p in producers):
                break
            continue
        nones += item is None
        items.append(item)  # the Nones too
    return items


def g_dedupe_set(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            if not any(p.is_alive() for p in producers):
                break
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    return list(set(items))  # duplicates collapse


def g_join_then_drain(q, producers):
    for p in producers:
        p.join()  # join before drain (and joining is the caller's job)
    items = []
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)


def g_terminates(q, producers):
    items, nones = [], 0
    deadline = time.monotonic() + 0.5
    while nones < len(producers) and time.monotonic() < deadline:
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    for p in producers:
        p.terminate()  # stopping them is the caller's job
    return items


def g_sleep_then_drain(q, producers):
    time.sleep(1.0)
    items = []
    while True:
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)


def g_wait_all_dead_ignores_nones(q, producers):
    items = []
    while True:
        alive = any(p.is_alive() for p in producers)
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            if not alive:
                return items
            continue
        if item is not None:
            items.append(item)


def g_hardcoded_none(q, producers):
    return []


# right answers


def g_right_plain(q, producers):
    items, nones = [], 0
    while nones < len(producers):
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            if not any(p.is_alive() for p in producers):
                break  # nobody left; what they sent is in the pipe: drain it below
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    if nones < len(producers):
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
    return items


def g_right_sentinels(q, producers):
    # another API: watch the producers' sentinels with connection.wait
    from multiprocessing.connection import wait

    items, nones = [], 0
    pending = {p.sentinel for p in producers}
    while nones < len(producers):
        try:
            item = q.get(True, 0.1)
        except queue.Empty:
            pending -= set(wait(list(pending), timeout=0))
            if not pending:
                try:
                    while True:
                        item = q.get(True, 0.1)
                        if item is not None:
                            items.append(item)
                except queue.Empty:
                    return items
            continue
        if item is None:
            nones += 1
        else:
            items.append(item)
    return items


def g_right_exitcode_generator(q, producers):
    def stream():
        nones = 0
        last_chance = False
        while nones < len(producers):
            try:
                item = q.get(timeout=0.2 if last_chance else 0.08)
            except queue.Empty:
                if last_chance:
                    return
                last_chance = all(p.exitcode is not None for p in producers)
                continue
            if item is None:
                nones += 1
            else:
                yield item

    return [*stream()]


GATHER_WRONG = {
    "count-nones-blocking-get": g_count_nones_blocking,
    "count-nones-5s-timeout": g_count_nones_long_timeout,
    "pause-taken-for-death": g_idle_timeout,
    "empty-poll": g_empty_poll,
    "stop-when-one-crashed": g_stop_first_dead,
    "all-dead-no-final-drain": g_no_final_drain,
    "keeps-nones": g_keeps_nones,
    "dedupe-with-set": g_dedupe_set,
    "joins-before-drain": g_join_then_drain,
    "terminates-producers": g_terminates,
    "sleep-then-drain": g_sleep_then_drain,
    "ignores-nones-waits-for-exit": g_wait_all_dead_ignores_nones,
    "hardcoded-empty": g_hardcoded_none,
}
GATHER_RIGHT = {
    "plain-timeout-loop": g_right_plain,
    "process-sentinels-wait": g_right_sentinels,
    "generator-exitcode-last-chance": g_right_exitcode_generator,
}


@pytest.mark.parametrize("answer", GATHER_WRONG.values(), ids=GATHER_WRONG.keys())
def test_gather_rejects(answer):
    expect(check.check_gather, answer, "wrong")


@pytest.mark.parametrize("answer", GATHER_RIGHT.values(), ids=GATHER_RIGHT.keys())
def test_gather_accepts(answer):
    expect(check.check_gather, answer, "correct")


# --- Exercise 2: parallel_blocks(sizes, n_workers) ------------------------------------


def _start(n, tasks, results):
    workers = [
        multiprocessing.Process(target=queues.make_block, args=(tasks, results)) for _ in range(n)
    ]
    for w in workers:
        w.start()
    return workers


def _right_core(sizes, n_workers, get_timeout=20):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    got = dict(results.get(timeout=get_timeout) for _ in sizes)
    for w in workers:
        w.join(timeout=20)
    return [got[i] for i in range(len(sizes))], workers


def b_serial(sizes, n_workers):
    return [bytes([i % 256]) * s for i, s in enumerate(sizes)]


def b_join_before_drain(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.join(timeout=1)  # join first: with big blocks this times out ...
    got = dict(results.get(timeout=10) for _ in sizes)  # ... then drain, never join again
    return [got[i] for i in range(len(sizes))]


def b_arrival_order(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    got = [results.get(timeout=10)[1] for _ in sizes]
    for w in workers:
        w.join(timeout=10)
    return got


def b_one_worker(sizes, n_workers):
    return _right_core(sizes, 1)[0]


def b_never_joins(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    got = dict(results.get(timeout=10) for _ in sizes)
    return [got[i] for i in range(len(sizes))]


def b_one_sentinel(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    tasks.put(None)  # one sentinel for all the workers
    got = dict(results.get(timeout=10) for _ in sizes)
    for w in workers:
        w.join(timeout=0.2)
    return [got[i] for i in range(len(sizes))]


def b_keyed_by_size(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    by_size = {}
    for _ in sizes:
        _, block = results.get(timeout=10)
        by_size[len(block)] = block  # equal sizes overwrite each other
    for w in workers:
        w.join(timeout=10)
    return [by_size[s] for s in sizes]


def b_sort_by_length(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    workers = _start(n_workers, tasks, results)
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in workers:
        tasks.put(None)
    got = sorted((results.get(timeout=10)[1] for _ in sizes), key=len)
    for w in workers:
        w.join(timeout=10)
    return got


def b_empty_is_none(sizes, n_workers):
    if not sizes:
        return None
    return _right_core(sizes, n_workers)[0]


def b_pool_starmap(sizes, n_workers):
    with multiprocessing.Pool(n_workers) as pool:
        return pool.starmap(operator.mul, [(bytes([i % 256]), s) for i, s in enumerate(sizes)])


def b_threads(sizes, n_workers):
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    threads = [
        threading.Thread(target=queues.make_block, args=(tasks, results)) for _ in range(n_workers)
    ]
    for t in threads:
        t.start()
    for i, size in enumerate(sizes):
        tasks.put((i, size))
    for _ in threads:
        tasks.put(None)
    got = dict(results.get(timeout=10) for _ in sizes)
    for t in threads:
        t.join(timeout=10)
    return [got[i] for i in range(len(sizes))]


def b_caps_workers(sizes, n_workers):
    return _right_core(sizes, min(n_workers, 2))[0]


# right answers


def b_right_plain(sizes, n_workers):
    return _right_core(sizes, n_workers)[0]


def b_right_numpy_order(sizes, n_workers):
    tasks, results = multiprocessing.SimpleQueue(), multiprocessing.Queue()
    workers = _start(int(np.int64(n_workers)), tasks, results)
    for i, size in zip(np.arange(len(sizes)), sizes, strict=True):
        tasks.put((int(i), size))
    for _ in workers:
        tasks.put(None)
    pairs = [results.get(timeout=20) for _ in sizes]
    order = np.argsort([index for index, _ in pairs], kind="stable")
    for w in workers:
        w.join(timeout=20)
    tasks.close()
    return [pairs[k][1] for k in order]


def b_right_context_prefill(sizes, n_workers):
    ctx = multiprocessing.get_context()
    tasks, results = ctx.Queue(), ctx.Queue(maxsize=0)
    workers = [
        ctx.Process(target=queues.make_block, args=(tasks, results)) for _ in range(n_workers)
    ]
    for w in workers:
        w.start()
    for item in list(enumerate(sizes)) + [None] * n_workers:
        tasks.put(item)
    out = [None] * len(sizes)
    remaining = len(sizes)
    while remaining:
        index, block = results.get(timeout=20)
        out[index] = block
        remaining -= 1
    for w in workers:
        w.join(timeout=20)
        if w.is_alive():
            w.terminate()
            w.join()
    return out


BLOCKS_WRONG = {
    "serial-no-processes": b_serial,
    "join-before-drain": b_join_before_drain,
    "arrival-order": b_arrival_order,
    "ignores-n-workers": b_one_worker,
    "never-joins": b_never_joins,
    "one-sentinel": b_one_sentinel,
    "keyed-by-size": b_keyed_by_size,
    "sorted-by-length": b_sort_by_length,
    "empty-returns-none": b_empty_is_none,
    "pool-starmap-no-make-block": b_pool_starmap,
    "threads-not-processes": b_threads,
    "caps-workers-at-2": b_caps_workers,
}
BLOCKS_RIGHT = {
    "plain": b_right_plain,
    "simplequeue-numpy-argsort": b_right_numpy_order,
    "context-prefilled-list": b_right_context_prefill,
}


@pytest.mark.parametrize("answer", BLOCKS_WRONG.values(), ids=BLOCKS_WRONG.keys())
def test_parallel_blocks_rejects(answer):
    expect(check.check_parallel_blocks, answer, "wrong")


@pytest.mark.parametrize("answer", BLOCKS_RIGHT.values(), ids=BLOCKS_RIGHT.keys())
def test_parallel_blocks_accepts(answer):
    expect(check.check_parallel_blocks, answer, "correct")
