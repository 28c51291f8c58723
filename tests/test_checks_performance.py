"""helpers.checks.performance: each exercise check rejects typical mistakes with its own hint."""

import numpy as np
import pytest
import threadpoolctl

from helpers.checks import ExerciseFailed
from helpers.checks import performance as checks


def good_plan(timings):
    ns = np.array(sorted(timings), dtype=float)
    seconds = np.array([timings[n] for n in sorted(timings)])
    columns = np.column_stack([np.ones_like(ns), 1 / ns, ns])
    (a, b, c), *_ = np.linalg.lstsq(columns, seconds, rcond=None)
    candidates = np.arange(1, 65)
    return candidates[np.argmin(a + b / candidates + c * candidates)]  # a NumPy integer


def polyfit_plan(timings):
    # n * T(n) = a*n + b + c*n**2: a parabola in n, fitted with polyfit
    ns = np.array(sorted(timings), dtype=float)
    c, a, b = np.polyfit(ns, ns * np.array([timings[n] for n in sorted(timings)]), 2)
    return min(range(1, 65), key=lambda n: a + b / n + c * n)


def sqrt_plan(timings):
    a, b, c = checks.fit_model(timings)
    return float(min(64, max(1, round((b / c) ** 0.5)))) if c > 0 else 64.0


def measured_best_plan(timings):
    return min(timings, key=timings.get)


def amdahl_plan(timings):
    ns = sorted(timings)
    speedups = [timings[1] / timings[n] for n in ns]
    _, f = np.polyfit([1 / n for n in ns], [1 / s for s in speedups], 1)
    return max(n for n in range(1, 65) if 1 / (f * n + 1 - f) >= 0.5)


def uncapped_sqrt_plan(timings):
    a, b, c = checks.fit_model(timings)
    return round((b / c) ** 0.5)


def no_serial_term_plan(timings):
    ns = np.array(sorted(timings), dtype=float)
    seconds = np.array([timings[n] for n in sorted(timings)])
    (b, c), *_ = np.linalg.lstsq(np.column_stack([1 / ns, ns]), seconds, rcond=None)
    return min(range(1, 65), key=lambda n: b / n + c * n)


def mutating_plan(timings):
    answer = good_plan(timings)
    timings.clear()
    return answer


@pytest.mark.parametrize("answer", [good_plan, polyfit_plan, sqrt_plan])
def test_plan_workers_accepts_right_answers_of_any_shape(answer, capsys):
    checks.check_plan_workers(answer)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda t: None, "whole number"),
        (lambda t: 12.5, "whole number"),
        (lambda t: True, "whole number"),
        (lambda t: 14, "predicts"),
        (measured_best_plan, "fastest count that was measured"),
        (amdahl_plan, "predicts"),
        (uncapped_sqrt_plan, "choose from 1 to 64"),
        (lambda t: max(t), "predicts"),
        (mutating_plan, "changed the timings"),
        (lambda t: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_plan_workers_rejects_mistakes_with_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_plan_workers(answer)


def test_reference_plan_values():
    assert [checks.reference_plan(t) for t in checks.TIMING_TABLES] == [14, 53, 3, 64, 10, 22]
    assert checks.fit_model({1: 3.0, 2: 2.5, 4: 3.0})[2] > 0


def test_no_serial_term_is_wrong_somewhere():
    with pytest.raises(ExerciseFailed):
        checks.check_plan_workers(no_serial_term_plan)


def good_init(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers), user_api="blas")


def skeleton_init(total_cpus, workers):
    pass


def with_init(total_cpus, workers):
    with threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers)):
        pass


def one_thread_init(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=1)


def env_init(total_cpus, workers):
    import os

    os.environ["OMP_NUM_THREADS"] = str(total_cpus // workers)


def raising_init(total_cpus, workers):
    threadpool_limits(1)  # noqa: F821 (a name the worker does not have)


def sleepy_init(total_cpus, workers):
    import time

    time.sleep(600)


def test_init_worker_does_not_hang_on_an_initializer_that_never_returns(monkeypatch):
    monkeypatch.setattr(checks, "INIT_TIMEOUT", 3)
    with pytest.raises(ExerciseFailed, match="did not answer within 3 s"):
        checks.check_init_worker(sleepy_init)


def test_init_worker_accepts_the_solution(capsys):
    checks.check_init_worker(good_init)
    assert capsys.readouterr().out.startswith("Correct:")


HIDE_BLAS = """
import threadpoolctl

_init = threadpoolctl.ThreadpoolController.__init__


def _without_blas(self):
    _init(self)
    self.lib_controllers = [lib for lib in self.lib_controllers if lib.user_api != "blas"]


threadpoolctl.ThreadpoolController.__init__ = _without_blas
"""


def test_init_worker_says_it_cannot_judge_where_no_blas_is_visible(tmp_path, monkeypatch, capsys):
    # As on macOS 14+, where NumPy's BLAS (Accelerate) is invisible to threadpoolctl: the
    # spawned worker imports this sitecustomize, so it finds no BLAS thread pool.
    (tmp_path / "sitecustomize.py").write_text(HIDE_BLAS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    checks.check_init_worker(good_init)
    out = capsys.readouterr().out
    assert out.startswith("Not checked:") and "Correct" not in out
    with pytest.raises(ExerciseFailed, match="raised NameError"):  # errors are still reported
        checks.check_init_worker(raising_init)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (skeleton_init, "did not change"),
        (with_init, "with block restores"),
        (one_thread_init, "leaves CPUs idle"),
        (env_init, "environment variable"),
        (raising_init, "raised NameError"),
    ],
)
def test_init_worker_rejects_mistakes_with_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_init_worker(answer)
