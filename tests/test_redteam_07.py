"""Red team for chapter 07's exercises: answers meant to fool the checks, and odd right ones.

Every case runs the check exactly as the notebook's check cell calls it. A wrong answer must
get ``ExerciseFailed``; a right one must pass. The answers are module-level functions, as a
learner's notebook functions are; the checks run them here, in threads and in processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import urllib.parse

import numpy as np
import pytest

from helpers import work
from helpers.checks import ExerciseFailed
from helpers.checks import locks as check

# ---------------------------------------------------------------- Exercise 1: pay


def p_skeleton(balances, account_locks, src, dsts, amount):
    for dst in dsts:
        balances[src] -= amount
        balances[dst] += amount


def p_src_lock_only(balances, account_locks, src, dsts, amount):
    with account_locks[src]:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount


def p_given_order_no_dedupe(balances, account_locks, src, dsts, amount):
    needed = [src, *dsts]  # the order the caller gave, duplicates and all
    taken = []
    try:
        for i in needed:
            if i in taken:
                continue
            account_locks[i].acquire()
            taken.append(i)
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in taken:
            account_locks[i].release()


def p_pairwise_steps(balances, account_locks, src, dsts, amount):
    for dst in dsts:  # each transfer is locked, the bill as a whole is not one step
        with contextlib.ExitStack() as stack:
            for i in sorted({src, dst}):
                stack.enter_context(account_locks[i])
            balances[src] -= amount
            balances[dst] += amount


def p_sorted_no_dedupe(balances, account_locks, src, dsts, amount):
    needed = sorted([src, *dsts])  # a duplicate means acquiring the same Lock twice
    for i in needed:
        if not account_locks[i].acquire(timeout=1):
            break
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in needed:
            with contextlib.suppress(ValueError):
                account_locks[i].release()


def p_single_global_lock(balances, account_locks, src, dsts, amount):
    with account_locks[0]:  # one lock "for the bank": not the lock of the accounts touched
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount


def p_release_src_early(balances, account_locks, src, dsts, amount):
    needed = sorted({src, *dsts})
    for i in needed:
        account_locks[i].acquire()
    balances[src] -= amount * len(dsts)
    account_locks[src].release()  # others now see the money gone but not yet arrived
    for dst in dsts:
        balances[dst] += amount
    for i in needed:
        if i != src:
            account_locks[i].release()


def p_timeout_skip(balances, account_locks, src, dsts, amount):
    needed = sorted({src, *dsts})
    got = []
    for i in needed:
        if account_locks[i].acquire(timeout=0.01):
            got.append(i)
    try:
        for dst in dsts:  # goes ahead even without every lock
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in got:
            account_locks[i].release()


def p_debits_once(balances, account_locks, src, dsts, amount):
    needed = sorted({src, *dsts})
    for i in needed:
        account_locks[i].acquire()
    try:
        balances[src] -= amount  # one amount, however many payees
        for dst in dsts:
            balances[dst] += amount
    finally:
        for i in reversed(needed):
            account_locks[i].release()


def p_pays_duplicates_once(balances, account_locks, src, dsts, amount):
    payees = sorted(set(dsts))
    needed = sorted({src, *payees})
    for i in needed:
        account_locks[i].acquire()
    try:
        for dst in payees:  # a payee named twice is paid once
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in needed:
            account_locks[i].release()


def p_crashes_on_empty(balances, account_locks, src, dsts, amount):
    needed = sorted({src, *dsts})
    top = max(dsts)  # empty dsts: ValueError
    for i in needed:
        account_locks[i].acquire()
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in needed:
            account_locks[i].release()
    return top


def p_string_order(balances, account_locks, src, dsts, amount):
    for key in sorted({str(src), *map(str, dsts)}):  # "10" < "2": still one order for all
        account_locks[int(key)].acquire()
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in {src, *dsts}:
            account_locks[i].release()


def p_src_then_sorted_dsts(balances, account_locks, src, dsts, amount):
    needed = [src, *sorted(set(dsts) - {src})]  # payer first: not one global order
    for i in needed:
        account_locks[i].acquire()
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in needed:
            account_locks[i].release()


def p_order_by_payer_parity(balances, account_locks, src, dsts, amount):
    # ascending for even payers, descending for odd ones: two orders, not one
    with contextlib.ExitStack() as stack:
        for i in sorted({src, *dsts}, reverse=src % 2 == 1):
            stack.enter_context(account_locks[i])
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount


def p_timeout_back_off(balances, account_locks, src, dsts, amount):
    needed = sorted(set(dsts) | {src})
    while True:
        taken = []
        for i in needed:
            if not account_locks[i].acquire(timeout=0.05):
                break
            taken.append(i)
        if len(taken) == len(needed):
            break
        for i in reversed(taken):
            account_locks[i].release()
    try:
        balances[src] -= amount * len(dsts)
        for dst in dsts:
            balances[dst] += amount
    finally:
        for i in reversed(taken):
            account_locks[i].release()


def p_descending_order(balances, account_locks, src, dsts, amount):
    with contextlib.ExitStack() as stack:
        for i in sorted({src, *dsts}, reverse=True):  # any one order everybody uses
            stack.enter_context(account_locks[i])
        balances[src] -= amount * len(dsts)
        for dst in dsts:
            balances[dst] += amount


def p_numpy_unique(balances, account_locks, src, dsts, amount):
    needed = np.unique(np.array([src, *dsts], dtype=np.int64))
    for i in needed:
        account_locks[i].acquire()
    try:
        total = np.int64(amount) * len(dsts)
        balances[src] = int(balances[src] - total)
        for dst in dsts:
            balances[dst] = balances[dst] + amount
    finally:
        for i in needed[::-1]:
            account_locks[i].release()


def p_try_all_back_off(balances, account_locks, src, dsts, amount):
    needed = list(dict.fromkeys([src, *dsts]))
    while True:
        taken = []
        for i in needed:
            if account_locks[i].acquire(block=False):
                taken.append(i)
            else:
                break
        if len(taken) == len(needed):
            break
        for i in taken:  # couldn't get them all: give everything back, try again
            account_locks[i].release()
        time.sleep(0.001)
    try:
        for dst in dsts:
            balances[src] -= amount
            balances[dst] += amount
    finally:
        for i in taken:
            account_locks[i].release()


PAY_WRONG = [
    pytest.param(p_skeleton, id="skeleton"),
    pytest.param(p_src_lock_only, id="payer-lock-only"),
    pytest.param(p_given_order_no_dedupe, id="given-order-unsorted"),
    pytest.param(p_pairwise_steps, id="pairwise-steps-not-one-step"),
    pytest.param(p_sorted_no_dedupe, id="sorted-no-dedupe"),
    pytest.param(p_single_global_lock, id="lock-0-for-everything"),
    pytest.param(p_release_src_early, id="releases-payer-early"),
    pytest.param(p_timeout_skip, id="timeout-then-go-ahead"),
    pytest.param(p_debits_once, id="debits-once"),
    pytest.param(p_pays_duplicates_once, id="duplicate-payee-paid-once"),
    pytest.param(p_crashes_on_empty, id="crashes-on-empty-dsts"),
    pytest.param(p_src_then_sorted_dsts, id="payer-first-then-sorted"),
    pytest.param(p_order_by_payer_parity, id="order-depends-on-payer"),
]
PAY_RIGHT = [
    pytest.param(p_descending_order, id="descending-order-exitstack"),
    pytest.param(p_numpy_unique, id="numpy-unique"),
    pytest.param(p_try_all_back_off, id="try-all-back-off"),
    pytest.param(p_string_order, id="string-sort-order"),
    pytest.param(p_timeout_back_off, id="timeout-back-off-retry"),
]


@pytest.mark.parametrize("answer", PAY_WRONG)
def test_pay_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check.check_pay(answer)


@pytest.mark.parametrize("answer", PAY_RIGHT)
def test_pay_accepts(answer):
    check.check_pay(answer)


# ---------------------------------------------------------------- Exercise 2: polite_download


def d_skeleton(limits, url, sink):
    work.fake_download(url, 0.3, sink=sink)


def d_manual_no_finally(limits, url, sink):
    sem = limits[url.split("/")[2]]
    sem.acquire()
    work.fake_download(url, 0.3, sink=sink)
    sem.release()  # skipped when the download fails: the place is lost


def d_swallows_failure(limits, url, sink):
    with limits[url.split("/")[2]]:
        try:
            work.fake_download(url, 0.3, sink=sink)
        except Exception:
            pass


def d_one_semaphore_for_all(limits, url, sink):
    with next(iter(limits.values())):  # the first host's limit, for every host
        work.fake_download(url, 0.3, sink=sink)


def d_every_host_semaphore(limits, url, sink):
    with contextlib.ExitStack() as stack:
        for host in sorted(limits):
            stack.enter_context(limits[host])
        work.fake_download(url, 0.3, sink=sink)


def d_host_from_end(limits, url, sink):
    with limits[url.split("/")[-2]]:  # right only when the path has one segment
        work.fake_download(url, 0.3, sink=sink)


def d_place_released_before_download(limits, url, sink):
    with limits[url.split("/")[2]]:
        pass
    work.fake_download(url, 0.3, sink=sink)


def d_takes_two_places(limits, url, sink):
    sem = limits[url.split("/")[2]]
    with sem, sem:
        work.fake_download(url, 0.3, sink=sink)


def d_double_release_on_error(limits, url, sink):
    sem = limits[url.split("/")[2]]
    sem.acquire()
    try:
        work.fake_download(url, 0.3, sink=sink)
    except Exception:
        sem.release()
        raise
    finally:
        sem.release()


def d_timeout_then_go_anyway(limits, url, sink):
    sem = limits[url.split("/")[2]]
    got = sem.acquire(timeout=0.05)
    try:
        work.fake_download(url, 0.3, sink=sink)
    finally:
        if got:
            sem.release()


_GLOBAL = threading.Lock()


def d_global_lock(limits, url, sink):
    with _GLOBAL, limits[url.split("/")[2]]:
        work.fake_download(url, 0.3, sink=sink)


_OWN: dict = {}


def d_own_semaphores(limits, url, sink):
    host = url.split("/")[2]
    sem = _OWN.setdefault(host, threading.BoundedSemaphore(2))  # ignores `limits`
    with sem:
        work.fake_download(url, 0.3, sink=sink)


def d_returns_span_no_sink(limits, url, sink):
    with limits[url.split("/")[2]]:
        return work.fake_download(url, 0.3)


def d_retries_once(limits, url, sink):
    with limits[url.split("/")[2]]:
        try:
            work.fake_download(url, 0.3, sink=sink)
        except Exception:
            work.fake_download(url + "-retry", 0.3, sink=sink)


def d_try_finally_urlsplit(limits, url, sink):
    sem = limits[urllib.parse.urlsplit(url).netloc]
    sem.acquire()
    try:
        return work.fake_download(url, 0.3, sink=sink)
    finally:
        sem.release()


def d_poll_with_timeout(limits, url, sink):
    host = url.partition("://")[2].partition("/")[0]
    sem = limits[host]
    while not sem.acquire(timeout=0.05):
        pass
    try:
        work.fake_download(url, 0.3, sink=sink)
    finally:
        sem.release()


def d_exitstack_callback(limits, url, sink):
    with contextlib.ExitStack() as stack:
        sem = limits.get(url.split("/")[2])
        sem.acquire()
        stack.callback(sem.release)
        work.fake_download(url, seconds=0.3, sink=sink)


DL_WRONG = [
    pytest.param(d_skeleton, id="skeleton"),
    pytest.param(d_manual_no_finally, id="manual-release-no-finally"),
    pytest.param(d_swallows_failure, id="swallows-failure"),
    pytest.param(d_one_semaphore_for_all, id="one-semaphore-for-all-hosts"),
    pytest.param(d_every_host_semaphore, id="holds-every-host"),
    pytest.param(d_host_from_end, id="host-from-split-minus-2"),
    pytest.param(d_place_released_before_download, id="releases-before-download"),
    pytest.param(d_takes_two_places, id="takes-two-places"),
    pytest.param(d_double_release_on_error, id="double-release-on-error"),
    pytest.param(d_timeout_then_go_anyway, id="timeout-then-download-anyway"),
    pytest.param(d_global_lock, id="global-threading-lock"),
    pytest.param(d_own_semaphores, id="own-semaphores-ignore-limits"),
    pytest.param(d_returns_span_no_sink, id="ignores-sink"),
    pytest.param(d_retries_once, id="retries-failure"),
]
DL_RIGHT = [
    pytest.param(d_try_finally_urlsplit, id="try-finally-urlsplit"),
    pytest.param(d_poll_with_timeout, id="poll-acquire-timeout"),
    pytest.param(d_exitstack_callback, id="exitstack-callback"),
]


@pytest.mark.parametrize("answer", DL_WRONG)
def test_polite_download_rejects(answer):
    with pytest.raises(ExerciseFailed):
        check.check_polite_download(answer)


@pytest.mark.parametrize("answer", DL_RIGHT)
def test_polite_download_accepts(answer):
    check.check_polite_download(answer)


def test_polite_download_accepts_a_submodule_under_spawn():
    """`import urllib.parse` binds only `urllib`: a spawned child must import the submodule
    too (under fork the child inherits it, so only spawn shows the difference)."""
    before = multiprocessing.get_start_method()
    multiprocessing.set_start_method("spawn", force=True)
    try:
        check.check_polite_download(d_try_finally_urlsplit)
    finally:
        multiprocessing.set_start_method(before, force=True)
