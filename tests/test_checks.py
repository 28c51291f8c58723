"""helpers.checks: verdicts, hints, and learner functions run in a spawned child."""

import multiprocessing
import time
from multiprocessing.connection import wait

import pytest

from helpers import checks


def learner_square(x):
    time.sleep(0)  # uses a module global: it must be re-imported in the child
    return x * x


def test_passed_prints_a_verdict(capsys):
    checks.passed("all good")
    assert capsys.readouterr().out == "Correct: all good\n"


def test_expect_and_fail_raise_with_the_hint():
    checks.expect(True, "unused")
    with pytest.raises(checks.ExerciseFailed, match="look at join"):
        checks.expect(False, "look at join")
    with pytest.raises(AssertionError, match="hint"):
        checks.fail("hint")
    assert checks.ExerciseFailed("x")._render_traceback_() == ["Not yet: x"]


def test_learner_function_runs_in_a_spawned_child():
    func = checks.LearnerFunction(learner_square)
    assert func(3) == 9
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(func, [1, 2, 3]) == [1, 4, 9]


def test_learner_function_rejects_what_it_cannot_carry():
    with pytest.raises(TypeError, match="func"):
        checks.LearnerFunction(len)
    with pytest.raises(TypeError, match="lambda"):
        checks.LearnerFunction(lambda x: x)


def test_stop_processes_joins_the_finished_and_terminates_the_stuck():
    ctx = multiprocessing.get_context("spawn")
    quick = ctx.Process(target=time.sleep, args=(0,))
    stuck = ctx.Process(target=time.sleep, args=(30,))
    quick.start()
    stuck.start()
    assert checks.stop_processes([quick, stuck], timeout=3) == [stuck]
    assert quick.exitcode == 0 and stuck.exitcode is not None and stuck.exitcode < 0


def test_require_function_names_the_argument():
    checks.require_function(learner_square)
    with pytest.raises(TypeError, match="worker must be a function"):
        checks.require_function(print, "worker")


def test_collect_stops_at_the_first_timeout():
    import queue

    q = queue.Queue()
    q.put(1)
    q.put(2)
    assert checks.collect(q, 3, timeout=0.1) == [1, 2]
    assert checks.collect(q, 1, timeout=0.1) == []


def learner_waits(conns, out):
    out.send([conn.recv() for conn in wait(conns)])  # `wait` was imported from a module


def test_learner_function_carries_imported_functions():
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    results, out = ctx.Pipe(duplex=False)
    child = ctx.Process(target=checks.LearnerFunction(learner_waits), args=([reader], out))
    child.start()
    out.close()
    writer.send("hi")
    assert results.poll(30) and results.recv() == ["hi"]
    child.join(timeout=10)
    assert child.exitcode == 0
    for conn in (reader, writer, results):
        conn.close()
