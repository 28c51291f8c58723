"""Unit tests for chapter 10's workers and tools (helpers.pitfalls) and exercise checks."""

import logging
import logging.handlers
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from helpers import pitfalls
from helpers.checks import ExerciseFailed
from helpers.checks.pitfalls import check_preflight, check_worker_logging, preflight_tasks

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


def right_preflight(tasks):
    problems = {}
    for i, task in enumerate(tasks):
        verdict = pitfalls.check_picklable(task)
        if not verdict.ok:
            problems[i] = verdict.error
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


def test_check_preflight_passes_the_right_answer(capsys):
    check_preflight(right_preflight)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda tasks: None, "returned None"),
        (function_only, "an argument does not"),
        (as_a_list, "return a dict"),
        (raising, "must report problems, not raise"),
        (with_the_good_ones, "leave out the tasks"),
        (vague, "doesn't say what failed"),
    ],
)
def test_check_preflight_hints(answer, hint):
    if answer.__name__ == "<lambda>":

        def answer(tasks):
            return None

    with pytest.raises(ExerciseFailed, match=hint):
        check_preflight(answer)


def test_preflight_tasks_closes_nothing_it_should_not():
    tasks, expected = preflight_tasks()
    tasks[2][1][0].close()
    assert set(right_preflight(tasks)) == set(expected)


def right_logging(q):
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(q)]
    root.setLevel(logging.INFO)


def skeleton_logging(q):
    pass


def no_level(q):
    logging.getLogger().addHandler(logging.handlers.QueueHandler(q))


def also_stream(q):
    root = logging.getLogger()
    root.addHandler(logging.handlers.QueueHandler(q))
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.INFO)


def test_check_worker_logging_passes_the_right_answer(capsys):
    check_worker_logging(right_logging)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (skeleton_logging, "add a logging.handlers.QueueHandler"),
        (no_level, "INFO records are dropped"),
        (also_stream, "records would be written twice"),
    ],
)
def test_check_worker_logging_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_worker_logging(answer)


# --- the symptom table's links ------------------------------------------------
