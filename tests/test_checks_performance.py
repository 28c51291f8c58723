"""helpers.checks.performance: each exercise check rejects typical mistakes with its own hint."""

import numpy as np
import pytest
import threadpoolctl

from helpers.checks import ExerciseFailed
from helpers.checks import performance as checks


def good_plan(timings):
    ns = sorted(timings)
    speedups = [timings[1] / timings[n] for n in ns]
    _, f = np.polyfit([1 / n for n in ns], [1 / s for s in speedups], 1)
    return float(f), max(n for n in range(1, 65) if 1 / (f * n + 1 - f) >= 0.5)


def slope_plan(timings):
    ns = sorted(timings)
    slope, _ = np.polyfit([1 / n for n in ns], [timings[1] / timings[n] for n in ns][::-1], 1)
    f, _ = good_plan(timings)
    return 1 - f, 4


def seconds_plan(timings):
    ns = sorted(timings)
    _, intercept = np.polyfit([1 / n for n in ns], [timings[n] for n in ns], 1)
    return float(intercept), 4


def table_max_plan(timings):
    return good_plan(timings)[0], max(timings)


def test_plan_workers_accepts_the_solution(capsys):
    checks.check_plan_workers(good_plan)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda t: None, "return a tuple"),
        (slope_plan, "slope"),
        (seconds_plan, "seconds, not speed-ups"),
        (table_max_plan, "largest count in the table"),
        (lambda t: (good_plan(t)[0], 1), "1 / \\(f\\*n \\+ 1 - f\\)"),
    ],
)
def test_plan_workers_rejects_mistakes_with_hints(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        checks.check_plan_workers(answer)


def test_reference_plan_values():
    assert [checks.reference_plan(t)[1] for t in checks.TIMING_TABLES] == [4, 9, 29]
    assert checks.reference_plan(checks.TIMING_TABLES[0])[0] == pytest.approx(0.3, abs=1e-3)


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


def test_init_worker_accepts_the_solution(capsys):
    checks.check_init_worker(good_init)
    assert capsys.readouterr().out.startswith("Correct:")


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
