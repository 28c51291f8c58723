"""Checks for the exercises of chapter 08 (events and coordination)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import Any

from helpers.checks import (
    LearnerFunction,
    collect,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_bounded_baker", "check_task_worker"]


def _call_in_thread(func: Any, *args: Any) -> tuple[threading.Thread, list]:
    errors: list = []

    def run() -> None:
        try:
            func(*args)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _squares(results: Any, n: int, timeout: float) -> list:
    return collect(results, n, timeout)


class _CountingQueue(queue.Queue):
    """A ``queue.Queue`` that counts ``get`` calls, and those that can't wait at all."""

    calls = waitless = 0

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.calls += 1
        if not block or (timeout is not None and timeout <= 0.001):
            self.waitless += 1
        return super().get(block, timeout)

    def empty(self) -> bool:
        self.calls += 1
        self.waitless += 1
        return super().empty()

    def qsize(self) -> int:
        self.calls += 1
        self.waitless += 1
        return super().qsize()


def check_task_worker(func: Any, grace: float = 1.5) -> None:
    """Check ``worker(stop, tasks, results)``: squares every number from ``tasks`` into
    ``results``, keeps waiting while ``tasks`` is empty, and once ``stop`` is set (even
    while it waits for a task) puts ``"done"`` into ``results`` and returns."""
    require_function(func)
    # 1. In a thread: quick, and it shows exactly what the worker does and when.
    stop, tasks, results = threading.Event(), _CountingQueue(), queue.Queue()
    for n in (1, 2, 3):
        tasks.put(n)
    thread, errors = _call_in_thread(func, stop, tasks, results)
    try:
        early = (
            f"{func.__name__} returned before stop was set: keep taking tasks until stop is set "
            "(an empty queue only means there is no work yet)"
        )
        time.sleep(0.3)
        expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
        expect(thread.is_alive(), early)
        got = _squares(results, 3, timeout=2)
        expect(
            got == [1, 4, 9],
            f"for the tasks 1, 2, 3 the worker put {got} into results, expected [1, 4, 9]",
        )
        tasks.put(4)
        late = _squares(results, 1, timeout=2)
        expect(late == [16], f"a task put in later got {late}, expected [16]")
        tasks.calls = tasks.waitless = 0
        time.sleep(0.5)  # the queue is empty again: the worker must keep waiting for work
        calls, waitless = tasks.calls, tasks.waitless
        expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
        expect(thread.is_alive(), early)
        expect(
            waitless < 20 and calls < 500,
            f"while there was no task for 0.5 s, {func.__name__} asked the queue {calls} times: "
            "it checks in a loop without waiting. Let the get() wait (with a timeout) instead",
        )
        extra = collect(results, 1, timeout=0)
        if extra:
            fail(f"{func.__name__} put {extra[0]!r} into results before stop was set")
        stop.set()  # while the worker waits for a task that never comes
        thread.join(timeout=grace)
        if thread.is_alive():
            for _ in range(3):  # unblock a get() that waits for ever, so the thread can end
                tasks.put(0)
            fail(
                f"{func.__name__} was still running {grace} s after stop was set while it waited "
                "for a task: a get() without a timeout never looks at stop again. Wait with "
                "tasks.get(timeout=...) and catch queue.Empty"
            )
        expect(not errors, f"{func.__name__} raised {errors[0]!r}" if errors else "")
        try:
            report = results.get_nowait()
        except queue.Empty:
            fail('after stop was set, put "done" into results before returning')
        expect(report == "done", f'expected "done" in results, got {report!r}')
    finally:
        stop.set()  # a worker left behind by a failed check must not run (or spin) for ever
        for _ in range(3):
            tasks.put(0)  # and a get() without a timeout gets something, so it can see stop

    # 2. In a real process: it must end by itself with exit code 0.
    stop, tasks, results = multiprocessing.Event(), multiprocessing.Queue(), multiprocessing.Queue()
    for n in (5, 6):
        tasks.put(n)
    p = multiprocessing.Process(target=LearnerFunction(func), args=(stop, tasks, results))
    p.start()
    got = _squares(results, 2, timeout=30)
    stop.set()
    done = _squares(results, 1, timeout=10 + grace)
    stuck = stop_processes([p], grace + 5)
    expect(not stuck, f"the process was still running {grace + 5} s after stop was set")
    expect(got == [25, 36], f"the process put {got} into results, expected [25, 36]")
    expect(done == ["done"], f'the process reported {done}, expected ["done"]')
    expect(p.exitcode == 0, f"the process exited with code {p.exitcode}, expected 0")
    passed("the worker did every task, waited while there was none, and stopped when told.")


class _Count:
    """Stands in for ``Value("i", 0, lock=False)`` in the thread part of a check; counts
    the changes made by a thread that did not hold ``shelf``'s lock."""

    def __init__(self, value: int, shelf: threading.Condition) -> None:
        self._value = value
        self._shelf = shelf
        self.unlocked_writes = 0

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        if not self._shelf._is_owned():  # type: ignore[attr-defined]
            self.unlocked_writes += 1
        self._value = new


class _Shelf(threading.Condition):
    """A ``threading.Condition`` that counts the calls that put a thread to sleep on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def _bake_twice(bake: Any, shelf: Any, loaves: Any, capacity: int, reports: Any) -> None:
    """Child process of ``check_bounded_baker``: bake two loaves, report each result."""
    for _ in (1, 2):
        reports.put(bake(shelf, loaves, capacity, 10.0))


def _is_true(value: Any) -> bool:
    return value is not None and not isinstance(value, (str, bytes)) and value == True  # noqa: E712


def _is_false(value: Any) -> bool:
    return value is not None and not isinstance(value, (str, bytes)) and value == False  # noqa: E712


def check_bounded_baker(func: Any) -> None:
    """Check ``bake(shelf, loaves, capacity, timeout)``: waits (under ``shelf``) until the
    shelf has room, adds one loaf, wakes the customers and returns True; returns False,
    shelf unchanged, when there is still no room after ``timeout`` seconds."""
    require_function(func)
    name = func.__name__

    def run(shelf: Any, loaves: Any, capacity: int, timeout: float) -> dict:
        """Call ``func`` in a daemon thread; the dict gets "value"/"error" and "cpu"."""
        outcome: dict = {}

        def call() -> None:
            cpu = time.thread_time()
            try:
                outcome["value"] = func(shelf, loaves, capacity, timeout)
            except Exception as exc:
                outcome["error"] = exc
            outcome["cpu"] = time.thread_time() - cpu

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        outcome["thread"] = thread
        return outcome

    def finished(outcome: dict, within: float) -> bool:
        outcome["thread"].join(timeout=within)
        if "error" in outcome:
            error = outcome["error"]
            hint = f"{name} raised {error!r}"
            if isinstance(error, RuntimeError) and "lock" in str(error):
                hint += ": wait and notify inside `with shelf:`"
            fail(hint)
        return not outcome["thread"].is_alive()

    def release(shelf: Any, loaves: Any, *bakers: dict) -> None:
        """Empty the shelf until every baker thread has ended (no thread left behind)."""
        for _ in range(60):
            if not any(b["thread"].is_alive() for b in bakers):
                return
            with shelf:
                loaves.value = 0
                shelf.notify_all()
            time.sleep(0.05)

    # 1. Room on the shelf: two loaves go on at once, each call returns True.
    shelf = _Shelf()
    loaves = _Count(0, shelf)
    for n in (1, 2):
        baker = run(shelf, loaves, 2, 5.0)
        expect(finished(baker, 1.0), f"{name} waited although the shelf had room")
        expect(loaves.value == n, f"after {n} call(s) the shelf held {loaves.value} loaves")
        expect(
            _is_true(baker.get("value")),
            f"{name} put a loaf on the shelf but returned {baker.get('value')!r}: return True",
        )
    unlocked = (
        f"{name} changed loaves.value without holding the shelf's lock: between a baker's look "
        "for room and its change, another baker can take the same place. Look for room and "
        "add the loaf in one block inside `with shelf:`"
    )

    # 2. Full shelf, and nobody takes a loaf: wait about `timeout`, then False, shelf unchanged.
    started = time.perf_counter()
    baker = run(shelf, loaves, 2, 0.3)
    if not finished(baker, 2.0):
        release(shelf, loaves, baker)
        fail(
            f"{name} was still waiting 2 s after its timeout of 0.3 s: pass timeout to "
            "wait_for (and give up when it says there is still no room)"
        )
    took = time.perf_counter() - started
    expect(
        loaves.value == 2,
        f"{name} put a loaf on a full shelf ({loaves.value} loaves, capacity 2): wait until "
        "loaves.value < capacity, and when the wait times out, add nothing",
    )
    expect(
        took >= 0.25, f"on a full shelf {name} gave up after {took:.2f} s, not after its timeout"
    )
    expect(
        _is_false(baker.get("value")),
        f"no room came within the timeout, and {name} returned {baker.get('value')!r}: "
        "return False",
    )
    expect(loaves.unlocked_writes == 0, unlocked)

    # 3. Full shelf: a baker waits, sleeping on the Condition, until a customer takes a loaf.
    shelf.waits = 0
    baker = run(shelf, loaves, 2, 5.0)
    time.sleep(0.4)
    if not baker["thread"].is_alive():
        fail(f"{name} returned {baker.get('value')!r} from a full shelf long before its timeout")
    expect(shelf.waits > 0, f"{name} did not wait on the Condition: use shelf.wait_for(...)")
    with shelf:  # a customer takes a loaf
        loaves.value -= 1
        shelf.notify_all()
    if not finished(baker, 1.0):
        release(shelf, loaves, baker)
        fail(
            f"{name} kept waiting after a customer took a loaf and notified: wait with "
            "shelf.wait_for(lambda: loaves.value < capacity, timeout) so that it re-checks"
        )
    expect(
        loaves.value == 2 and _is_true(baker.get("value")),
        f"after a customer made room, the shelf held {loaves.value} loaves (expected 2) and "
        f"{name} returned {baker.get('value')!r} (expected True)",
    )
    expect(
        baker["cpu"] < 0.1,
        f"{name} used {baker['cpu']:.2f} s of CPU while it waited: sleep on the Condition "
        "(wait_for) instead of checking in a loop",
    )
    expect(loaves.unlocked_writes == 0, unlocked)

    # 4. Two bakers wait at a full shelf (capacity 1); one loaf is taken: only one may bake.
    shelf = _Shelf()
    loaves = _Count(1, shelf)
    first, second = run(shelf, loaves, 1, 5.0), run(shelf, loaves, 1, 5.0)
    time.sleep(0.3)
    with shelf:
        loaves.value -= 1
        shelf.notify_all()  # wakes both bakers
    time.sleep(0.3)
    overfilled = loaves.value
    gave_up = [
        b for b in (first, second) if not b["thread"].is_alive() and _is_false(b.get("value"))
    ]
    release(shelf, loaves, first, second)
    finished(first, 0.1)
    finished(second, 0.1)
    expect(
        overfilled == 1,
        f"two bakers waited at a full shelf of capacity 1, a customer took one loaf and "
        f"notified, and the shelf then held {overfilled} loaves: a woken baker must check "
        "again for room before it bakes",
    )
    expect(loaves.unlocked_writes == 0, unlocked)
    expect(
        not gave_up,
        f"two bakers waited at a full shelf (timeout 5 s); one loaf was taken, one baker baked, "
        f"and {name} returned False for the other 0.3 s later, long before its timeout: a "
        "wake-up that finds no room is no time-out. Wait again, for the time that is left",
    )

    # 5. Bakers and a customer wait on the same Condition (three bakers first); another
    #    baker bakes. Its notification must reach the customer, not only waiting bakers.
    shelf = _Shelf()
    loaves = _Count(1, shelf)
    waiting_bakers = [run(shelf, loaves, 1, 3.0) for _ in range(3)]
    time.sleep(0.3)
    with shelf:
        loaves.value = 0  # a loaf sold over the counter: nobody was notified
    woken: list[float] = []

    def customer() -> None:
        with shelf:
            if shelf.wait_for(lambda: loaves.value > 0, timeout=1.5):
                loaves.value -= 1
                woken.append(time.perf_counter())
                shelf.notify_all()

    waiting_customer = threading.Thread(target=customer, daemon=True)
    waiting_customer.start()
    time.sleep(0.2)
    baked = time.perf_counter()
    second = run(shelf, loaves, 1, 1.0)
    finished(second, 1.0)
    waiting_customer.join(timeout=2)
    release(shelf, loaves, *waiting_bakers, second)
    for baker in waiting_bakers:
        finished(baker, 0.1)
    expect(
        bool(woken) and woken[0] - baked < 1.0,
        "a customer waiting for a loaf was not woken when it was baked. Bakers and customers "
        "wait on the same Condition: a notify() that wakes one waiter (or n) may wake bakers "
        "who wait for room, and the customer sleeps on. Wake them all after adding the loaf",
    )
    expect(loaves.unlocked_writes == 0, unlocked)

    # 6. In a real process, with a multiprocessing Condition and Value (capacity 1).
    shelf_p = multiprocessing.Condition()
    loaves_p = multiprocessing.Value("i", 0, lock=False)
    reports = multiprocessing.Queue()
    p = multiprocessing.Process(
        target=_bake_twice, args=(LearnerFunction(func), shelf_p, loaves_p, 1, reports)
    )
    p.start()
    first = collect(reports, 1, timeout=30)
    time.sleep(0.3)
    second_early = collect(reports, 1, timeout=0)
    with shelf_p:
        loaves_p.value -= 1
        shelf_p.notify_all()
    second = collect(reports, 1, timeout=10)
    stuck = stop_processes([p], 10)
    expect(bool(first) and _is_true(first[0]), "the process never finished baking its first loaf")
    expect(not second_early, "the process put a second loaf on a full shelf (capacity 1)")
    expect(
        not stuck and bool(second) and _is_true(second[0]),
        "the process never baked its second loaf once there was room",
    )
    expect(p.exitcode == 0, f"the process exited with code {p.exitcode}, expected 0")
    passed(
        "the baker waits (at most its timeout) while the shelf is full, re-checks when woken, "
        "and wakes bakers and customers alike after each loaf."
    )
