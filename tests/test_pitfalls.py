"""Unit tests for chapter 10's workers and tools (helpers.pitfalls) and exercise checks."""

import io
import multiprocessing
import os
import queue as pitfalls_queue
import signal
import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler

import pytest

from helpers import pitfalls
from helpers.checks import ExerciseFailed
from helpers.checks.pitfalls import check_collect_squares, check_preflight, check_run_batch
from helpers.pitfalls import square_into

SPAWN = multiprocessing.get_context("spawn")


def test_check_picklable_reports_instead_of_raising():
    ok = pitfalls.check_picklable([1, 2, 3])
    assert ok.ok and ok.size > 0 and ok.error is None
    bad = pitfalls.check_picklable(lambda: None)
    assert not bad.ok and bad.size is None
    assert bad.error.split(":")[0] in {"PicklingError", "AttributeError"}
    lock = pitfalls.check_picklable(multiprocessing.Lock())
    assert lock.error.startswith("RuntimeError") and "inheritance" in lock.error
    assert pitfalls.check_picklable(threading.Lock()).error.startswith("TypeError")


def test_account_and_argument_checks():
    account = pitfalls.Account(10)
    assert account.deposit(5) == 15
    with pytest.raises(TypeError, match="amount"):
        account.deposit("5")
    with pytest.raises(TypeError, match="value"):
        pitfalls.set_setting(3)
    with pytest.raises(TypeError, match="lock"):
        pitfalls.init_shared(None, None)
    with pytest.raises(TypeError, match="q"):
        pitfalls.init_queue_logging([])
    with pytest.raises(TypeError, match="data"):
        pitfalls.loads("x")
    with pytest.raises(ValueError, match="delay"):
        pitfalls.kill_self(-1)
    with pytest.raises(TypeError, match="func"):
        pitfalls.call_and_report(None, 3)
    with pytest.raises(ValueError, match="source"):
        pitfalls.run_script("")
    with pytest.raises(ValueError, match="timeout"):
        pitfalls.run_script("pass", timeout=-1)


def test_settings_and_shared_counter_reach_spawned_workers():
    with SPAWN.Pool(1, initializer=pitfalls.set_setting, initargs=("x",)) as pool:
        assert pool.map(pitfalls.read_setting, range(2)) == ["x", "x"]
    lock, counter = SPAWN.Lock(), SPAWN.Value("i", 0, lock=False)
    with SPAWN.Pool(2, initializer=pitfalls.init_shared, initargs=(lock, counter)) as pool:
        pool.map(pitfalls.add_to_counter, range(5))
    assert counter.value == 10
    with pytest.raises(RuntimeError, match="initializer"):
        pitfalls.add_to_counter(1)


def test_needs_two_args_breaks_an_executor_and_loads_reports():
    with ProcessPoolExecutor(1, mp_context=SPAWN) as executor:
        error = executor.submit(pitfalls.raise_needs_two, 1).exception(timeout=30)
    assert isinstance(error, BrokenProcessPool)
    assert pitfalls.loads(b"not a pickle").startswith("UnpicklingError")
    assert pitfalls.loads(pitfalls.pickle.dumps(3)) == "ok"


def test_call_and_report_sends_the_traceback():
    q = SPAWN.Queue()
    p = SPAWN.Process(target=pitfalls.call_and_report, args=(q, pitfalls.checked_sqrt, -1))
    p.start()
    kind, text = q.get(timeout=30)
    p.join(timeout=30)
    assert kind == "error" and "ValueError" in text and p.exitcode == 1


def test_nested_pool_and_try_lock():
    assert pitfalls.nested_pool(3) == [0, 1, 4]  # not daemonic here
    with SPAWN.Pool(1) as pool:
        assert "daemonic" in pool.apply(pitfalls.nested_pool, (2,))
    p = SPAWN.Process(target=pitfalls.try_lock, args=(0.1,))
    p.start()
    p.join(timeout=30)
    assert p.exitcode == 0


def test_kill_self_gives_exit_code_minus_nine():
    p = SPAWN.Process(target=pitfalls.kill_self)
    p.start()
    p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL


def test_leaky_task_grows_memory():
    _, pid, before = pitfalls.leaky_task(0, 0)
    _, _, after = pitfalls.leaky_task(1, 20)
    pitfalls._LEAK.clear()
    assert pid == os.getpid() and after - before > 15


def test_run_script_captures_interrupts_and_cleans_up():
    run = pitfalls.run_script("import sys; print('hi'); sys.exit(3)")
    assert (run.returncode, run.stdout, run.timed_out, run.leftovers) == (3, "hi\n", False, [])
    run = pitfalls.run_script(
        "import time\nprint('started', flush=True)\ntime.sleep(10)",
        interrupt_on="started",
        timeout=5,
    )
    assert run.returncode == -signal.SIGINT and "KeyboardInterrupt" in run.stderr  # killed by it
    assert run.seconds < 5
    run = pitfalls.run_script("import time; time.sleep(10)", timeout=0.3, grace=0.1)
    assert run.timed_out and run.returncode is None and len(run.leftovers) == 1


def test_run_script_timeout_counts_from_the_interrupt():
    source = "import time\ntime.sleep(0.5)\nprint('started', flush=True)\ntime.sleep(10)"
    run = pitfalls.run_script(source, interrupt_on="started", timeout=0.3, grace=0.1)
    assert run.stdout == "started\n" and run.returncode == -signal.SIGINT  # interrupted
    run = pitfalls.run_script("import time; time.sleep(10)", interrupt_on="x", line_timeout=0.3)
    assert run.timed_out and run.stdout == ""  # the line never came: no interrupt
    with pytest.raises(ValueError, match="line_timeout"):
        pitfalls.run_script("pass", line_timeout=-1)


def test_stuck_worker_dumps_its_stack():
    source = (
        "import multiprocessing, os, signal, time\n"
        "from helpers.pitfalls import stuck_worker\n"
        "if __name__ == '__main__':\n"
        "    ctx = multiprocessing.get_context('spawn')\n"
        "    ready, never = ctx.Event(), ctx.Event()\n"
        "    p = ctx.Process(target=stuck_worker, args=(ready, never, 0.1))\n"
        "    p.start(); ready.wait(30); time.sleep(0.3); p.terminate(); p.join()\n"
    )
    run = pitfalls.run_script(source, timeout=30)
    assert "in stuck_worker" in run.stderr and run.leftovers == []


# --- checks -----------------------------------------------------------------


class MainSpy(ForkingPickler):
    """A pickler that notes every function or class from __main__ it pickles."""

    def __init__(self, file):
        super().__init__(file)
        self.in_main = []

    def persistent_id(self, obj):
        home = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
        if getattr(home, "__module__", None) == "__main__":
            self.in_main.append(home.__qualname__)


def right_preflight(tasks):
    problems = {}
    for i, task in enumerate(tasks):
        verdict = pitfalls.check_picklable(task)
        if not verdict.ok:
            problems[i] = verdict.error
            continue
        spy = MainSpy(io.BytesIO())
        spy.dump(task)
        if spy.in_main:
            problems[i] = f"{spy.in_main[0]} is defined in __main__"
    return problems


def right_by_unpickling_in_spawn(tasks):
    """Another right answer: unpickle each task in a spawn worker."""
    problems = {}
    sendable = {}
    for i, task in enumerate(tasks):
        verdict = pitfalls.check_picklable(task)
        if verdict.ok:
            sendable[i] = pitfalls.pickle.dumps(task)
        else:
            problems[i] = verdict.error
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        for i, data in sendable.items():
            outcome = executor.submit(pitfalls.loads, data).result(timeout=30)
            if outcome != "ok":
                problems[i] = outcome
    return problems


def picklable_only(tasks):
    problems = {}
    for i, task in enumerate(tasks):
        verdict = pitfalls.check_picklable(task)
        if not verdict.ok:
            problems[i] = verdict.error
    return problems


def function_module_only(tasks):
    problems = picklable_only(tasks)
    for i, (func, _) in enumerate(tasks):
        if i not in problems and getattr(func, "__module__", None) == "__main__":
            problems[i] = "__main__"
    return problems


def function_only(tasks):
    return {
        i: pitfalls.check_picklable(f).error
        for i, (f, _) in enumerate(tasks)
        if not pitfalls.check_picklable(f).ok
    }


def as_a_list(tasks):
    return sorted(right_preflight(tasks))


def raising(tasks):
    for task in tasks:
        pitfalls.pickle.dumps(task)
    return {}


def with_the_good_ones(tasks):
    return {i: pitfalls.check_picklable(t).error for i, t in enumerate(tasks)}


def vague(tasks):
    return dict.fromkeys(right_preflight(tasks), "bad")


def everything_in_main_flagged_even_empty(tasks):
    return {0: "__main__"} if not tasks else right_preflight(tasks)


@pytest.mark.parametrize("answer", [right_preflight, right_by_unpickling_in_spawn])
def test_check_preflight_passes_right_answers(answer, capsys):
    check_preflight(answer)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda tasks: None, "returned None"),
        (picklable_only, "they pickle, so check_picklable says ok"),
        (function_module_only, "an argument holds an object"),
        (function_only, "the dict should be empty|an argument does not"),
        (as_a_list, "should be empty"),
        (raising, "must report problems, not raise"),
        (with_the_good_ones, "should be empty"),
        (vague, "doesn't say what failed"),
        (everything_in_main_flagged_even_empty, "should be empty"),
    ],
)
def test_check_preflight_hints(answer, hint):
    if answer.__name__ == "<lambda>":

        def answer(tasks):
            return None

    with pytest.raises(ExerciseFailed, match=hint):
        check_preflight(answer)


def test_check_preflight_restores_main():
    main = sys.modules["__main__"]
    main.clean_row = "mine"
    try:
        with pytest.raises(ExerciseFailed):
            check_preflight(picklable_only)
        assert main.clean_row == "mine" and not hasattr(main, "Reading")
    finally:
        del main.clean_row


def test_square_into_puts_squares_and_fails_on_a_bad_record():
    q = pitfalls_queue.Queue()
    pitfalls.square_into([1, 2, 3], q)
    assert [q.get_nowait() for _ in range(3)] == [1, 4, 9]
    with pytest.raises(ValueError, match="bad record"):
        pitfalls.square_into([2, -1, 3], q)
    assert q.get_nowait() == 4 and q.empty()
    with pytest.raises(TypeError):
        pitfalls.square_into([1], object())


def broken_collect(numbers, workers=2):
    results = multiprocessing.Queue()
    chunks = [numbers[i::workers] for i in range(workers)]
    procs = [multiprocessing.Process(target=square_into, args=(c, results)) for c in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=1)
    for p in procs:
        p.terminate()
    squares = []
    while not results.empty():
        squares.append(results.get())
    return sorted(squares)


def right_collect(numbers, workers=2):
    results = multiprocessing.Queue()
    chunks = [numbers[i::workers] for i in range(workers)]
    procs = [multiprocessing.Process(target=square_into, args=(c, results)) for c in chunks]
    for p in procs:
        p.start()
    squares = []
    try:
        while len(squares) < len(numbers):
            try:
                squares.append(results.get(timeout=0.1))
            except pitfalls_queue.Empty:
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"a worker failed, exit codes {failed}") from None
    finally:
        for p in procs:
            p.join(timeout=1)
            if p.is_alive():
                p.terminate()
                p.join()
    return sorted(squares)


def drain_without_timeout(numbers, workers=2):
    results = multiprocessing.Queue()
    chunks = [numbers[i::workers] for i in range(workers)]
    procs = [multiprocessing.Process(target=square_into, args=(c, results)) for c in chunks]
    for p in procs:
        p.start()
    squares = [results.get() for _ in numbers]
    for p in procs:
        p.join()
    return sorted(squares)


def serial_collect(numbers, workers=2):
    if any(x < 0 for x in numbers):
        raise ValueError("bad record")
    return sorted(x * x for x in numbers)


def test_check_collect_squares_passes_the_right_answer(capsys):
    check_collect_squares(right_collect)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (broken_collect, "results went missing"),
        (drain_without_timeout, "it hangs"),
        (serial_collect, "not computed by square_into in worker processes"),
    ],
)
def test_check_collect_squares_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_collect_squares(answer)


def hanging_batch(tasks):
    with multiprocessing.Pool(2) as pool:
        pending = [pool.apply_async(func, args) for func, args in tasks]
        return [p.get() for p in pending]


def right_batch(tasks):
    results = [None] * len(tasks)
    lost = []
    with ProcessPoolExecutor(max_workers=2) as executor:
        futures = [executor.submit(func, *args) for func, args in tasks]
        for i, future in enumerate(futures):
            try:
                results[i] = future.result(timeout=60)
            except BrokenProcessPool:
                lost.append(i)
            except Exception as exc:
                results[i] = exc
    retries = {}
    for i in lost:
        executor = ProcessPoolExecutor(max_workers=1)
        func, args = tasks[i]
        retries[i] = (executor, executor.submit(func, *args))
    for i, (executor, future) in retries.items():
        try:
            results[i] = future.result(timeout=60)
        except Exception as exc:
            results[i] = exc
        executor.shutdown()
    return results


def no_second_chance(tasks):
    with ProcessPoolExecutor(max_workers=2) as executor:
        futures = [executor.submit(func, *args) for func, args in tasks]
        out = []
        for future in futures:
            try:
                out.append(future.result(timeout=30))
            except Exception as exc:
                out.append(exc)
        return out


def in_the_caller(tasks):
    out = []
    for func, args in tasks:
        try:
            out.append(func(*args))
        except Exception as exc:
            out.append(exc)
    return out


def test_check_run_batch_passes_the_right_answer(capsys):
    check_run_batch(right_batch)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (hanging_batch, "it hangs"),
        (no_second_chance, "still deserves its result"),
        (in_the_caller, "must run in worker processes"),
    ],
)
def test_check_run_batch_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_run_batch(answer)


# --- the symptom table's links ------------------------------------------------


def test_run_script_lets_the_resource_tracker_clean_up_after_a_kill():
    source = (
        "import multiprocessing, time\n"
        "if __name__ == '__main__':\n"
        "    q = multiprocessing.get_context('spawn').Queue()\n"
        "    names = [q._rlock._semlock.name, q._wlock._semlock.name]\n"
        "    print(*names, flush=True)\n"
        "    time.sleep(30)\n"
    )
    run = pitfalls.run_script(source, timeout=3, grace=0.1)
    assert run.timed_out
    assert "leaked semaphore objects to clean up at shutdown" in run.stderr
    for name in run.stdout.split():  # glibc keeps named semaphores in /dev/shm as sem.*
        assert not os.path.exists(f"/dev/shm/sem.{name.lstrip('/')}")
