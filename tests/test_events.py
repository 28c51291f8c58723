"""Unit tests for the chapter 08 workers (helpers.events) and checks (helpers.checks.events)."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time

import matplotlib
import pytest

from helpers import events, timeline
from helpers.checks import ExerciseFailed
from helpers.checks import events as check

matplotlib.use("Agg")


def _drain(q, n):
    return [q.get(timeout=10) for _ in range(n)]


def test_traffic_light_records_alternating_phases_and_ends_green():
    green, phases = threading.Event(), queue.Queue()
    events.traffic_light(green, 2, 0.05, 0.05, phases)
    spans = _drain(phases, 4)
    assert [s.label for s in spans] == ["red", "green", "red", "green"]
    assert all(s.duration >= 0.04 for s in spans)
    assert green.is_set()  # switched off: the road stays open


def test_naive_light_has_almost_no_red_and_stops_after_cycles():
    green, phases = threading.Event(), queue.Queue()
    events.naive_light(green, 0.05, phases, cycles=3)
    spans = _drain(phases, 6)
    assert [s.label for s in spans] == ["red", "green"] * 3
    red = sum(s.duration for s in spans if s.label == "red")
    green_time = sum(s.duration for s in spans if s.label == "green")
    assert green_time >= 0.14 and red < 0.1 * green_time


def test_naive_light_without_cycles_never_ends():
    green = multiprocessing.Event()
    p = multiprocessing.Process(target=events.naive_light, args=(green, 0.01))
    p.start()
    p.join(timeout=0.3)
    alive = p.is_alive()
    p.terminate()
    p.join(timeout=5)
    assert alive


def test_naive_light_validates():
    with pytest.raises(ValueError, match="green_seconds"):
        events.naive_light(threading.Event(), -1)
    with pytest.raises(ValueError, match="cycles"):
        events.naive_light(threading.Event(), 0.1, cycles=0)


def test_traffic_light_and_cars_in_threads():
    green, phases, cars = threading.Event(), queue.Queue(), queue.Queue()
    start_line = threading.Barrier(4, timeout=5)
    light = threading.Thread(
        target=events.traffic_light, args=(green, 3, 0.1, 0.1, phases, start_line)
    )
    drivers = [
        threading.Thread(target=events.car, args=(green, f"c{i}", d, cars, start_line))
        for i, d in enumerate([0.02, 0.15, 0.25])
    ]
    for t in [light, *drivers]:
        t.start()
    for t in [light, *drivers]:
        t.join(timeout=10)
    spans, passes = _drain(phases, 6), _drain(cars, 3)
    assert events.cars_on_red(spans, passes) == []
    waited = {name: passed - arrived for name, arrived, passed in passes}
    assert waited["c0"] >= 0.05  # arrived on red: waited for the green


def test_cars_on_red_flags_wrong_passes():
    t = timeline.now()
    phases = [
        timeline.make_span("red", t, t + 1),
        timeline.make_span("green", t + 1, t + 2),
    ]
    cars = [("ok", t, t + 1.5), ("red-runner", t, t + 0.5), ("stuck", t, None)]
    assert events.cars_on_red(phases, cars) == ["red-runner", "stuck"]


def test_cars_on_red_checks_the_whole_wait_window():
    t = timeline.now()
    phases = [
        timeline.make_span("green", t, t + 1),
        timeline.make_span("red", t + 1, t + 2),
        timeline.make_span("green", t + 2, t + 3),
    ]
    cars = [
        ("paused after wait", t + 0.5, t + 1.5),  # saw green, noted its time on red: fine
        ("waited through red", t + 1.2, t + 1.9),  # never met a green phase
        ("after switch-off", t + 5, t + 5),  # the last green lasts for ever
    ]
    assert events.cars_on_red(phases, cars) == ["waited through red"]


def test_naive_light_without_sleep_never_sleeps(monkeypatch):
    monkeypatch.setattr(events.time, "sleep", lambda s: pytest.fail("slept"))
    events.naive_light(threading.Event(), 0, cycles=10)


def test_waiter_reports_each_round():
    results = queue.Queue()
    flag = threading.Event()
    events.waiter(flag, 0.05, results, rounds=2)
    assert [r for r, _ in _drain(results, 2)] == [False, False]
    flag.set()
    events.waiter(flag, 1.0, results, start_line=threading.Barrier(1))
    returned, seconds = results.get_nowait()
    assert returned is True and seconds < 0.5


def test_waiter_validates():
    with pytest.raises(ValueError, match="timeout"):
        events.waiter(threading.Event(), -1, [])
    with pytest.raises(ValueError, match="rounds"):
        events.waiter(threading.Event(), 1, [], rounds=0)


def test_shopper_counts_checks():
    shelf, loaves, results = threading.Condition(), type("V", (), {"value": 1})(), queue.Queue()
    events.shopper(shelf, loaves, "s", results, timeout=1)
    assert results.get_nowait() == ("s", True, 1) and loaves.value == 0
    events.shopper(shelf, loaves, "s", results, timeout=0.05)
    name, got, checks = results.get_nowait()
    assert (name, got) == ("s", False) and checks >= 1
    with pytest.raises(TypeError, match="name"):
        events.shopper(shelf, loaves, 1, results)


def test_wiretap_forwards_and_keeps_what_the_client_sent():
    from multiprocessing.connection import Client, Listener

    received = []
    with Listener(("127.0.0.1", 0), authkey=b"k") as listener:

        def serve():
            with listener.accept() as conn:
                received.append(conn.recv())
                conn.send("reply")

        server = threading.Thread(target=serve)
        server.start()
        with events.wiretap(listener.address) as (tap, captured):
            with Client(tap, authkey=b"k") as conn:
                conn.send({"secret": "plain"})
                assert conn.recv() == "reply"
            server.join(timeout=10)
    assert received == [{"secret": "plain"}]
    assert b"plain" in captured and b"reply" not in captured


def test_wiretap_validates():
    with pytest.raises(TypeError, match="address"):
        with events.wiretap("127.0.0.1:80"):
            pass
    with pytest.raises(ValueError, match="loopback"):
        with events.wiretap(("example.org", 80)):
            pass


def test_car_gives_up_after_timeout():
    sink = queue.Queue()
    events.car(threading.Event(), "c", 0, sink, timeout=0.05)
    name, _, passed = sink.get_nowait()
    assert name == "c" and passed is None


def test_plot_traffic_draws_one_row_per_car():
    t = timeline.now()
    phases = [timeline.make_span("red", t, t + 1), timeline.make_span("green", t + 1, t + 2)]
    ax = events.plot_traffic(phases, [("a", t + 0.5, t + 1.0), ("b", t + 1.2, t + 1.2)], t)
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["a", "b"]


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: events.traffic_light(threading.Event(), 0, 0.1, 0.1, []), ValueError, "cycles"),
        (lambda: events.traffic_light(threading.Event(), 1, "x", 0.1, []), TypeError, "red"),
        (lambda: events.car(threading.Event(), 3, 0, []), TypeError, "name"),
        (lambda: events.car(threading.Event(), "c", -1, []), ValueError, "delay"),
        (
            lambda: events.worker_until_stopped(threading.Event(), "w", [], -1),
            ValueError,
            "interval",
        ),
        (lambda: events.baker(None, None, "2", 1, 0.1, []), TypeError, "batches"),
        (lambda: events.customer(None, None, 5, []), TypeError, "name"),
        (lambda: events.phase_worker(None, "w", 0.1, []), TypeError, "durations"),
        (lambda: events.meet_or_give_up(None, "w", [], timeout=-1), ValueError, "timeout"),
    ],
)
def test_workers_validate_arguments(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_worker_until_stopped_cleans_up_in_a_process():
    stop, results = multiprocessing.Event(), multiprocessing.Queue()
    p = multiprocessing.Process(target=events.worker_until_stopped, args=(stop, "w", results))
    p.start()
    assert results.get(timeout=30) == ("w", "started")
    time.sleep(0.1)
    stop.set()
    name, what, units = results.get(timeout=10)
    p.join(timeout=5)
    assert (name, what, p.exitcode) == ("w", "cleaned up", 0) and units >= 1


def test_bakery_serves_everyone_after_baking():
    shelf, loaves, sink = threading.Condition(), type("V", (), {"value": 0})(), queue.Queue()
    customers = [
        threading.Thread(target=events.customer, args=(shelf, loaves, f"c{i}", sink))
        for i in range(4)
    ]
    for t in customers:
        t.start()
    events.baker(shelf, loaves, 2, 2, 0.05, sink)
    for t in customers:
        t.join(timeout=5)
    spans = _drain(sink, 6)
    bakes = sorted((s for s in spans if s.label.startswith("bake")), key=lambda s: s.end)
    served = sorted((s for s in spans if s.label.startswith("c")), key=lambda s: s.end)
    assert loaves.value == 0 and len(served) == 4
    assert all(s.end >= bakes[k // 2].end for k, s in enumerate(served))


def test_customer_gives_up_when_nothing_is_baked():
    sink = queue.Queue()
    events.customer(threading.Condition(), type("V", (), {"value": 0})(), "c", sink, 0.05)
    assert sink.get_nowait().label == "c gave up"


def test_phase_worker_lines_up_phases():
    barrier, sink = threading.Barrier(2, timeout=5), queue.Queue()
    crew = [
        threading.Thread(target=events.phase_worker, args=(barrier, n, d, sink))
        for n, d in [("a", [0.01, 0.1]), ("b", [0.1, 0.01])]
    ]
    for t in crew:
        t.start()
    for t in crew:
        t.join(timeout=5)
    spans = _drain(sink, 8)
    phase1_end = max(s.end for s in spans if s.label == "phase 1")
    assert all(s.start >= phase1_end for s in spans if s.label == "phase 2")


def test_meet_or_give_up_reports_broken_barrier():
    results = queue.Queue()
    events.meet_or_give_up(threading.Barrier(2), "w", results, timeout=0.05)
    assert results.get_nowait() == ("w", "BrokenBarrierError")
    events.meet_or_give_up(threading.Barrier(1), "w", results, timeout=0.05)
    assert results.get_nowait() == ("w", "met")


# --- checks ---------------------------------------------------------------------------


def worker(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        results.put(number * number)
    results.put("done")


def skeleton_worker(stop, tasks, results):
    number = tasks.get()
    results.put(number * number)


def blocking_worker(stop, tasks, results):
    while not stop.is_set():
        number = tasks.get()  # waits for ever once the tasks run out
        results.put(number * number)
    results.put("done")


def quitter_worker(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get(timeout=0.1)
        except queue.Empty:
            break  # "no task" is not "stop"
        results.put(number * number)
    results.put("done")


def mute_worker(stop, tasks, results):
    while not stop.is_set():
        try:
            results.put(tasks.get(timeout=0.1) ** 2)
        except queue.Empty:
            pass


def wrong_worker(stop, tasks, results):
    while not stop.is_set():
        try:
            results.put(2 * tasks.get(timeout=0.1))
        except queue.Empty:
            pass
    results.put("done")


def test_check_task_worker_passes_right_answer(capsys):
    check.check_task_worker(worker)
    assert "Correct" in capsys.readouterr().out


def test_check_task_worker_fails_the_skeleton_fast():
    started = time.perf_counter()
    with pytest.raises(ExerciseFailed, match="returned before stop was set"):
        check.check_task_worker(skeleton_worker)
    assert time.perf_counter() - started < 1


def peeking_worker(stop, tasks, results):
    while not stop.is_set():
        if tasks.empty():  # looks, never waits
            continue
        results.put(tasks.get() ** 2)
    results.put("done")


def spinning_worker(stop, tasks, results):
    while not stop.is_set():
        try:
            number = tasks.get_nowait()  # never waits: spins while the queue is empty
        except queue.Empty:
            continue
        results.put(number * number)
    results.put("done")


@pytest.mark.parametrize(
    "answer, hint",
    [
        (blocking_worker, "get\\(\\) without a timeout"),
        (quitter_worker, "returned before stop was set"),
        (mute_worker, 'put "done"'),
        (wrong_worker, "expected \\[1, 4, 9\\]"),
        (spinning_worker, "checks in a loop without waiting"),
        (peeking_worker, "checks in a loop without waiting"),
    ],
)
def test_check_task_worker_fails_wrong_answers(answer, hint):
    threads = threading.active_count()
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_task_worker(answer)
    deadline = time.monotonic() + 3
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads  # the learner's thread did not stay behind


def bake(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False  # still no room
        loaves.value += 1
        shelf.notify_all()
        return True


def bake_with_a_deadline_loop(shelf, loaves, capacity, timeout):
    deadline = time.monotonic() + timeout
    with shelf:
        while loaves.value >= capacity:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            shelf.wait(left)
        loaves.value += 1
        shelf.notify_all()
    return True


def bake_notify_all_first(shelf, loaves, capacity, timeout):
    with shelf:
        room = shelf.wait_for(lambda: loaves.value < capacity, timeout=timeout)
        if room:
            shelf.notify_all()  # nobody can look before we release the lock
            loaves.value += 1
        return bool(room)


def skeleton_bake(shelf, loaves, capacity, timeout):
    loaves.value += 1
    return True


def unlocked_bake(shelf, loaves, capacity, timeout):
    shelf.wait_for(lambda: loaves.value < capacity, timeout)
    loaves.value += 1
    return True


def silent_bake(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
        loaves.value += 1
        return True


def notify_one_bake(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
        loaves.value += 1
        shelf.notify()
        return True


def notify_two_bake(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, timeout):
            return False
        loaves.value += 1
        shelf.notify(2)  # one baker and one customer?
        return True


def ignoring_timeout_bake(shelf, loaves, capacity, timeout):
    with shelf:
        shelf.wait_for(lambda: loaves.value < capacity, timeout)  # result ignored
        loaves.value += 1
        shelf.notify_all()
        return True


def no_recheck_bake(shelf, loaves, capacity, timeout):
    with shelf:
        if loaves.value >= capacity and not shelf.wait(timeout):
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def own_timeout_bake(shelf, loaves, capacity, timeout):
    with shelf:
        if not shelf.wait_for(lambda: loaves.value < capacity, 10):
            return False
        loaves.value += 1
        shelf.notify_all()
        return True


def polling_bake(shelf, loaves, capacity, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with shelf:
            if loaves.value < capacity:
                loaves.value += 1
                shelf.notify_all()
                return True
    return False


def always_waiting_bake(shelf, loaves, capacity, timeout):
    with shelf:
        shelf.wait(timeout)  # waits for a notification even when there is room
        loaves.value += 1
        shelf.notify_all()
        return True


@pytest.mark.parametrize("answer", [bake, bake_with_a_deadline_loop, bake_notify_all_first])
def test_check_bounded_baker_passes_right_answers(answer, capsys):
    check.check_bounded_baker(answer)
    assert "Correct" in capsys.readouterr().out


def test_check_bounded_baker_fails_the_skeleton_fast():
    started = time.perf_counter()
    with pytest.raises(ExerciseFailed, match="full shelf"):
        check.check_bounded_baker(skeleton_bake)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "answer, hint",
    [
        (unlocked_bake, "inside `with shelf:`"),
        (silent_bake, "Wake them all"),
        (notify_one_bake, "a notify\\(\\) that wakes one waiter"),
        (notify_two_bake, "Wake them all"),
        (ignoring_timeout_bake, "add nothing"),
        (no_recheck_bake, "check\\s+again for room"),
        (own_timeout_bake, "still waiting 2 s after its timeout"),
        (polling_bake, "did not wait on the Condition"),
        (always_waiting_bake, "waited although the shelf had room"),
    ],
)
def test_check_bounded_baker_fails_wrong_answers(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_bounded_baker(answer)


def test_checks_reject_non_functions():
    with pytest.raises(TypeError, match="func"):
        check.check_task_worker(print)
    with pytest.raises(TypeError, match="func"):
        check.check_bounded_baker(print)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_worker_ignoring_sigterm_survives_sigterm_and_stops_on_the_event():
    stop, results = multiprocessing.Event(), multiprocessing.Queue()
    p = multiprocessing.Process(target=events.worker_ignoring_sigterm, args=(stop, "w", results))
    p.start()
    assert results.get(timeout=30) == ("w", "started")
    os.kill(p.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert p.is_alive()
    stop.set()
    name, what, _units = results.get(timeout=10)
    p.join(timeout=5)
    assert (name, what, p.exitcode) == ("w", "cleaned up", 0)


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child: POSIX")
def test_worker_until_interrupted_cleans_up_on_sigint():
    results = multiprocessing.Queue()
    p = multiprocessing.Process(target=events.worker_until_interrupted, args=("w", results))
    p.start()
    assert results.get(timeout=30) == ("w", "started")
    time.sleep(0.1)
    os.kill(p.pid, signal.SIGINT)
    name, what, _units = results.get(timeout=10)
    p.join(timeout=5)
    assert (name, what, p.exitcode) == ("w", "interrupted", 0)
    with pytest.raises(ValueError, match="interval"):
        events.worker_until_interrupted("w", results, interval=-1)
