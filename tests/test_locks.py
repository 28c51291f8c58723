"""Unit tests for the chapter 07 workers (helpers.locks) and checks (helpers.checks.locks)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import urllib.parse

import pytest

from helpers import locks, timeline, work
from helpers.checks import ExerciseFailed
from helpers.checks import locks as check

SELLERS = [locks.sell, locks.sell_locked, locks.sell_whole_loop_locked, locks.sell_local_then_once]


def test_sell_global_changes_only_this_process_copy(monkeypatch):
    monkeypatch.setattr(locks, "tickets_left", 100)
    results = queue.Queue()
    locks.sell_global(3, results)
    _, left = results.get_nowait()
    assert left == 97 and locks.tickets_left == 97


def test_sell_global_in_a_child_leaves_the_parent_alone():
    results = multiprocessing.Queue()
    p = multiprocessing.Process(target=locks.sell_global, args=(5, results))
    p.start()
    _, left = results.get(timeout=30)
    p.join()
    assert p.exitcode == 0
    assert left == 95 and locks.tickets_left == 100


@pytest.mark.parametrize("seller", SELLERS)
def test_sellers_count_in_one_process(seller):
    tickets = multiprocessing.Value("i", 50)
    spans = []
    seller(tickets, 20, spans)
    assert tickets.value == 30
    assert len(spans) == 1 and isinstance(spans[0], timeline.Span)


def test_sell_works_on_a_value_without_lock():
    tickets = multiprocessing.Value("i", 10, lock=False)
    locks.sell(tickets, 4)
    assert tickets.value == 6


@pytest.mark.parametrize("seller", SELLERS[1:])
def test_locked_sellers_are_exact_in_two_processes(seller):
    tickets = multiprocessing.Value("i", 20_000)
    procs = [multiprocessing.Process(target=seller, args=(tickets, 10_000)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    assert tickets.value == 0


@pytest.mark.parametrize("seller", SELLERS)
def test_sellers_wait_at_the_start_line(seller):
    tickets = multiprocessing.Value("i", 100)
    start_line = threading.Barrier(2, timeout=5)
    spans = []
    thread = threading.Thread(target=seller, args=(tickets, 10, spans, start_line))
    thread.start()
    time.sleep(0.1)
    assert tickets.value == 100 and not spans  # still waiting for the second seller
    start_line.wait()
    thread.join(timeout=5)
    assert tickets.value == 90 and len(spans) == 1


def test_unlocked_sellers_lined_up_lose_updates_in_some_trial():
    """The chapter's claim: with a start line and 2 CPUs, the racy seller loses sales."""
    if work.usable_cpus() < 2:
        pytest.skip("needs two usable CPUs")
    losses = []
    for _ in range(5):
        tickets = multiprocessing.Value("i", 100_000)
        start_line = multiprocessing.Barrier(2, timeout=30)
        procs = [
            multiprocessing.Process(target=locks.sell, args=(tickets, 50_000, None, start_line))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=30)
        assert [p.exitcode for p in procs] == [0, 0]
        losses.append(tickets.value)
    assert all(lost >= 0 for lost in losses) and any(lost > 0 for lost in losses)


@pytest.mark.parametrize("seller", SELLERS)
def test_sellers_validate_arguments(seller):
    with pytest.raises(TypeError, match="counter"):
        seller(5, 1)
    with pytest.raises(TypeError, match="times"):
        seller(multiprocessing.Value("i", 0), "3")
    with pytest.raises(ValueError, match="times"):
        seller(multiprocessing.Value("i", 0), -1)


def test_check_person_records_queue_and_check_spans():
    sink = queue.Queue()
    sem = threading.Semaphore(1)
    locks.check_person(sem, "T1", 0.05, sink)
    spans = [sink.get_nowait(), sink.get_nowait()]
    assert [s.label for s in spans] == ["queue", "T1"]
    assert spans[1].duration >= 0.04
    assert sem.acquire(timeout=0)  # released again


def test_check_person_limits_overlap():
    sem = threading.Semaphore(2)
    sink = queue.Queue()
    threads = [
        threading.Thread(target=locks.check_person, args=(sem, f"T{i}", 0.1, sink))
        for i in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = [sink.get_nowait() for _ in range(10)]
    checks = [s for s in spans if s.label != "queue"]
    assert timeline.max_overlap(checks) == 2


def test_check_person_waits_at_the_start_line():
    sem, sink = threading.Semaphore(4), queue.Queue()
    start_line = threading.Barrier(4, timeout=5)
    threads = [
        threading.Thread(target=locks.check_person, args=(sem, f"T{i}", 0.1, sink, start_line))
        for i in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert sink.empty()  # nobody arrived before the start line opened
    start_line.wait()
    for t in threads:
        t.join(timeout=5)
    checks = [s for s in (sink.get_nowait() for _ in range(6)) if s.label != "queue"]
    assert timeline.max_overlap(checks) == 3


def test_check_person_validates():
    with pytest.raises(TypeError, match="person"):
        locks.check_person(threading.Semaphore(), 1, 0.1, queue.Queue())
    with pytest.raises(ValueError, match="seconds"):
        locks.check_person(threading.Semaphore(), "T", -1, queue.Queue())


def _transfers(orders, hold=0.1, timeout=0.3, both_hold=False):
    start_line = threading.Barrier(len(orders), timeout=5)
    holding_line = threading.Barrier(len(orders), timeout=5) if both_hold else None
    results = queue.Queue()
    threads = [
        threading.Thread(
            target=locks.transfer,
            args=(name, a, b, start_line, results, hold, timeout, holding_line),
        )
        for name, a, b in orders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return {r["name"]: r for r in (results.get_nowait() for _ in orders)}


def test_transfer_opposite_order_times_out_and_same_order_completes():
    a, b = ("A", threading.Lock()), ("B", threading.Lock())
    opposite = _transfers([("1", a, b), ("2", b, a)])
    assert any(r["outcome"].startswith("gave up waiting for") for r in opposite.values())
    ordered = _transfers([("1", a, b), ("2", a, b)])
    assert [r["outcome"] for r in ordered.values()] == ["done", "done"]
    assert a[1].acquire(timeout=0) and b[1].acquire(timeout=0)  # all released


def test_transfer_with_a_holding_line_deadlocks_even_with_no_hold():
    a, b = ("A", threading.Lock()), ("B", threading.Lock())
    opposite = _transfers([("1", a, b), ("2", b, a)], hold=0, timeout=0.2, both_hold=True)
    assert any(r["outcome"].startswith("gave up waiting for") for r in opposite.values())
    assert a[1].acquire(timeout=0) and b[1].acquire(timeout=0)  # all released


def test_transfer_validates():
    pair = ("A", threading.Lock())
    with pytest.raises(TypeError, match="name"):
        locks.transfer(1, pair, pair, threading.Barrier(1), queue.Queue())
    with pytest.raises(TypeError, match="first"):
        locks.transfer("x", threading.Lock(), pair, threading.Barrier(1), queue.Queue())
    with pytest.raises(ValueError, match="hold"):
        locks.transfer("x", pair, pair, threading.Barrier(1), queue.Queue(), hold=-1)


# --- checks ---------------------------------------------------------------------------


def pay(balances, account_locks, src, dsts, amount):
    accounts = sorted({src, *dsts})
    taken = []
    try:
        for account in accounts:
            account_locks[account].acquire()
            taken.append(account)
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for account in reversed(taken):
            account_locks[account].release()


def pay_with_exit_stack(balances, account_locks, src, dsts, amount):
    import contextlib

    with contextlib.ExitStack() as stack:
        for account in sorted(set(dsts) | {src}):
            stack.enter_context(account_locks[account])
        balances[src] -= amount * len(dsts)
        for dst in dsts:
            balances[dst] += amount


def pay_racy(balances, account_locks, src, dsts, amount):
    for dst in dsts:
        balances[src] -= amount
        balances[dst] += amount


def pay_pair_by_pair(balances, account_locks, src, dsts, amount):
    for dst in dsts:  # each move locked, but the payment as a whole is not one step
        first, second = sorted({src, dst}) if src != dst else (src, None)
        with account_locks[first]:
            if second is None:
                continue
            with account_locks[second]:
                balances[src] -= amount
                balances[dst] += amount


def pay_src_first(balances, account_locks, src, dsts, amount):
    accounts = [src] + sorted(set(dsts) - {src})
    for account in accounts:
        account_locks[account].acquire()
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for account in accounts:
            account_locks[account].release()


def pay_no_dedup(balances, account_locks, src, dsts, amount):
    accounts = sorted([src, *dsts])  # a payee twice: its lock taken twice
    for account in accounts:
        account_locks[account].acquire()
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for account in accounts:
            account_locks[account].release()


def pay_leaky(balances, account_locks, src, dsts, amount):
    for account in sorted({src, *dsts}):
        account_locks[account].acquire()
    for dst in dsts:
        balances[src] -= amount
        balances[dst] += amount


def pay_once(balances, account_locks, src, dsts, amount):
    accounts = sorted({src, *dsts})
    for account in accounts:
        account_locks[account].acquire()
    try:
        for dst in set(dsts):  # a payee listed twice is paid once
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for account in accounts:
            account_locks[account].release()


def pay_broken(balances, account_locks, src, dsts, amount):
    raise RuntimeError("oops")


def pay_skeleton(balances, account_locks, src, dsts, amount):
    for dst in dsts:  # Your code here: no locks yet
        balances[src] -= amount
        balances[dst] += amount


@pytest.mark.parametrize("answer", [pay, pay_with_exit_stack])
def test_check_pay_passes_right_answers(answer, capsys):
    check.check_pay(answer)
    assert "Correct" in capsys.readouterr().out
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "answer, hint",
    [
        (pay_skeleton, "while not holding"),
        (pay_racy, "while not holding"),
        (pay_pair_by_pair, "while not holding"),
        (pay_src_first, "one order"),
        (pay_no_dedup, "taken twice"),
        (pay_leaky, "still holding"),
        (pay_once, "expected"),
        (pay_broken, "raised"),
    ],
)
def test_check_pay_fails_wrong_answers_fast(answer, hint):
    started = time.perf_counter()
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_pay(answer)
    assert time.perf_counter() - started < 1  # judged in this process, before any child starts


def test_check_pay_rejects_non_functions():
    with pytest.raises(TypeError, match="func"):
        check.check_pay(print)


def polite_download(limits, url, sink):
    host = urllib.parse.urlsplit(url).hostname
    with limits[host]:
        work.fake_download(url, 0.3, sink=sink)


def polite_download_split(limits, url, sink):
    with limits[url.split("/")[2]]:
        work.fake_download(url, 0.3, sink=sink)


def rude_download(limits, url, sink):
    work.fake_download(url, 0.3, sink=sink)


def one_queue_download(limits, url, sink):
    with limits["example.org"]:  # every host waits in the same queue
        work.fake_download(url, 0.3, sink=sink)


def leaky_download(limits, url, sink):
    limits[urllib.parse.urlsplit(url).hostname].acquire()
    work.fake_download(url, 0.1, sink=sink)


def forgetful_download(limits, url, sink):
    with limits[urllib.parse.urlsplit(url).hostname]:
        work.fake_download(url, 0.1)


def no_finally_download(limits, url, sink):
    limit = limits[url.split("/")[2]]
    limit.acquire()
    work.fake_download(url, 0.1, sink=sink)
    limit.release()  # skipped when the download raises


def hiding_download(limits, url, sink):
    with limits[url.split("/")[2]]:
        try:
            work.fake_download(url, 0.1, sink=sink)
        except ConnectionError:
            pass


@pytest.mark.parametrize("answer", [polite_download, polite_download_split])
def test_check_polite_download_passes_right_answers(answer, capsys):
    check.check_polite_download(answer)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, hint",
    [
        (rude_download, "each host allows 2"),
        (one_queue_download, "waited for each"),
        (leaky_download, "never got a place"),
        (forgetful_download, "expected 7 spans"),
        (no_finally_download, "kept its place"),
        (hiding_download, "reach the caller"),
    ],
)
def test_check_polite_download_fails_wrong_answers(answer, hint):
    started = time.perf_counter()
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_polite_download(answer)
    assert time.perf_counter() - started < 8  # judged in threads, before any process starts
