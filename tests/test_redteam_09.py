"""Red team for chapter 09's exercises: answers meant to fool the checks, and odd right ones.

Every case runs the check exactly as the notebook's check cell calls it. A wrong answer must
get ``ExerciseFailed``; a right one must pass. The answers are module-level functions, as a
learner's notebook functions are (the BLAS check runs them in spawned pool workers).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import threadpoolctl

from helpers.checks import ExerciseFailed
from helpers.checks.performance import check_init_worker, check_plan_workers

# ---------------------------------------------------------------- Exercise 1: plan_workers

N_RANGE = np.arange(1, 65)


def _fit(timings):
    n = np.array(list(timings), dtype=float)
    t = np.array(list(timings.values()), dtype=float)
    design = np.column_stack([np.ones_like(n), 1 / n, n])
    return np.linalg.lstsq(design, t, rcond=None)[0]


def p_skeleton(timings):
    return max(timings)


def p_best_measured(timings):
    return min(timings, key=timings.get)


def p_sqrt_unclamped(timings):
    a, b, c = _fit(timings)
    return round(math.sqrt(b / c)) if c > 0 else 10_000


def p_no_intercept(timings):
    n = np.array(list(timings), dtype=float)
    t = np.array(list(timings.values()), dtype=float)
    (b, c), *_ = np.linalg.lstsq(np.column_stack([1 / n, n]), t, rcond=None)
    return int(N_RANGE[np.argmin(b / N_RANGE + c * N_RANGE)])


def p_amdahl_only(timings):
    n = np.array(list(timings), dtype=float)
    t = np.array(list(timings.values()), dtype=float)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(n), 1 / n]), t, rcond=None)
    return int(N_RANGE[np.argmin(a + b / N_RANGE)])


def p_quadratic(timings):
    coefficients = np.polyfit(list(timings), list(timings.values()), 2)
    return int(N_RANGE[np.argmin(np.polyval(coefficients, N_RANGE))])


def p_constant(timings):
    return 12


def p_powers_of_two(timings):
    a, b, c = _fit(timings)
    candidates = [1, 2, 4, 8, 16, 32, 64]
    return min(candidates, key=lambda n: a + b / n + c * n)


def p_measured_counts_only(timings):
    a, b, c = _fit(timings)
    return min(timings, key=lambda n: a + b / n + c * n)  # the fit, but only where measured


def p_index_not_count(timings):
    a, b, c = _fit(timings)
    return int(np.argmin(a + b / N_RANGE + c * N_RANGE))  # 0-based: one too few


def p_returns_time(timings):
    a, b, c = _fit(timings)
    return float(np.min(a + b / N_RANGE + c * N_RANGE))


def p_range_to_16(timings):
    a, b, c = _fit(timings)
    ns = np.arange(1, 17)
    return int(ns[np.argmin(a + b / ns + c * ns)])


def p_exact_three_points(timings):
    first = sorted(timings)[:3]  # three equations, no least squares
    design = np.array([[1, 1 / n, n] for n in first], dtype=float)
    a, b, c = np.linalg.solve(design, [timings[n] for n in first])
    return int(N_RANGE[np.argmin(a + b / N_RANGE + c * N_RANGE)])


def p_mutates(timings):
    timings.pop(max(timings))  # "drop the outlier", in the caller's dict
    a, b, c = _fit(timings)
    return int(N_RANGE[np.argmin(a + b / N_RANGE + c * N_RANGE)])


def p_keyerror(timings):
    b = timings[1] - timings[2]  # assumes 1 and 2 were measured
    return max(1, min(64, round(b)))


def p_right_lstsq_numpy_int(timings):
    a, b, c = _fit(timings)
    return N_RANGE[np.argmin(a + b / N_RANGE + c * N_RANGE)]  # a NumPy integer


def p_right_normal_equations(timings):
    # Pure Python: solve the 3x3 normal equations by Cramer's rule.
    rows = [(1.0, 1.0 / n, float(n)) for n in timings]
    ts = list(timings.values())
    m = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
    v = [sum(r[i] * t for r, t in zip(rows, ts, strict=True)) for i in range(3)]

    def det(q):
        return (
            q[0][0] * (q[1][1] * q[2][2] - q[1][2] * q[2][1])
            - q[0][1] * (q[1][0] * q[2][2] - q[1][2] * q[2][0])
            + q[0][2] * (q[1][0] * q[2][1] - q[1][1] * q[2][0])
        )

    d = det(m)
    coef = []
    for k in range(3):
        mk = [row[:] for row in m]
        for i in range(3):
            mk[i][k] = v[i]
        coef.append(det(mk) / d)
    a, b, c = coef
    return min(range(1, 65), key=lambda n: a + b / n + c * n)


def p_right_closed_form(timings):
    a, b, c = _fit(timings)
    if c <= 0:  # no cost per worker: more is always better
        return 64
    if b <= 0:
        return 1
    root = math.sqrt(b / c)
    near = {max(1, min(64, k)) for k in (math.floor(root), math.ceil(root))}
    return min(near, key=lambda n: a + b / n + c * n)


def p_right_relative_weights(timings):
    # Weighted least squares (relative errors): another reasonable fit.
    n = np.array(sorted(timings), dtype=float)
    t = np.array([timings[k] for k in sorted(timings)], dtype=float)
    design = np.column_stack([np.ones_like(n), 1 / n, n]) / t[:, None]
    a, b, c = np.linalg.lstsq(design, np.ones_like(t), rcond=None)[0]
    return int(N_RANGE[np.argmin(a + b / N_RANGE + c * N_RANGE)])


PLANS = [
    pytest.param(p_skeleton, False, id="skeleton-max"),
    pytest.param(p_best_measured, False, id="best-measured"),
    pytest.param(p_sqrt_unclamped, False, id="sqrt-unclamped"),
    pytest.param(p_no_intercept, False, id="fit-without-a"),
    pytest.param(p_amdahl_only, False, id="fit-without-c"),
    pytest.param(p_quadratic, False, id="quadratic-fit"),
    pytest.param(p_constant, False, id="constant-12"),
    pytest.param(p_powers_of_two, False, id="powers-of-two-only"),
    pytest.param(p_measured_counts_only, False, id="fit-but-measured-counts"),
    pytest.param(p_index_not_count, False, id="argmin-index"),
    pytest.param(p_returns_time, False, id="returns-time"),
    pytest.param(p_range_to_16, False, id="searches-1-16"),
    pytest.param(p_exact_three_points, False, id="exact-three-points"),
    pytest.param(p_mutates, False, id="mutates-timings"),
    pytest.param(p_keyerror, False, id="assumes-keys"),
    pytest.param(p_right_lstsq_numpy_int, True, id="right-numpy-int"),
    pytest.param(p_right_normal_equations, True, id="right-pure-python"),
    pytest.param(p_right_closed_form, True, id="right-closed-form"),
    pytest.param(p_right_relative_weights, True, id="right-weighted-fit"),
]


@pytest.mark.parametrize(("answer", "right"), PLANS)
def test_plan_workers(answer, right):
    if right:
        check_plan_workers(answer)
    else:
        with pytest.raises(ExerciseFailed):
            check_plan_workers(answer)


# ---------------------------------------------------------------- Exercise 2: init_worker


def i_skeleton(total_cpus, workers):
    pass


def i_with_block(total_cpus, workers):
    with threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers)):
        pass  # the limit ends with the block


def i_always_one(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=1)


def i_no_floor_of_one(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=total_cpus // workers)  # 0 changes nothing


def i_ceiling(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, -(-total_cpus // workers)))


def i_env_vars(total_cpus, workers):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(max(1, total_cpus // workers))


def i_openmp_only(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers), user_api="openmp")


def i_machine_cpus(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, os.cpu_count() // workers))


def i_swapped(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, workers // total_cpus))


def i_only_when_several(total_cpus, workers):
    if workers > 1:
        threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers))


def i_rounded(total_cpus, workers):
    threadpoolctl.threadpool_limits(limits=max(1, round(total_cpus / workers)))


def i_exits(total_cpus, workers):
    import sys

    threadpoolctl.threadpool_limits(limits=max(1, total_cpus // workers))
    sys.exit(0)  # "done": ends the worker it should have prepared


def i_right_controller(total_cpus, workers):
    controller = threadpoolctl.ThreadpoolController()
    controller.limit(limits=max(1, total_cpus // workers), user_api="blas")


def i_right_numpy_converted(total_cpus, workers):
    share = int(np.maximum(1, np.floor_divide(total_cpus, workers)))
    threadpoolctl.threadpool_limits(share, "blas")


_LIMITER = None


def i_right_global_reference(total_cpus, workers):
    global _LIMITER
    _LIMITER = threadpoolctl.threadpool_limits(limits=total_cpus // workers or 1)


INITS = [
    pytest.param(i_skeleton, False, id="skeleton"),
    pytest.param(i_with_block, False, id="with-block"),
    pytest.param(i_always_one, False, id="always-one"),
    pytest.param(i_no_floor_of_one, False, id="zero-when-more-workers"),
    pytest.param(i_ceiling, False, id="ceiling"),
    pytest.param(i_env_vars, False, id="env-vars-too-late"),
    pytest.param(i_openmp_only, False, id="openmp-not-blas"),
    pytest.param(i_machine_cpus, False, id="os-cpu-count"),
    pytest.param(i_swapped, False, id="swapped-division"),
    pytest.param(i_only_when_several, False, id="skips-one-worker"),
    pytest.param(i_rounded, False, id="rounds-not-floors"),
    pytest.param(i_exits, False, id="sys-exit-in-initializer"),
    pytest.param(i_right_controller, True, id="right-controller"),
    pytest.param(i_right_numpy_converted, True, id="right-numpy-int-converted"),
    pytest.param(i_right_global_reference, True, id="right-or-1-kept-reference"),
]


@pytest.mark.parametrize(("answer", "right"), INITS)
def test_init_worker(answer, right):
    if right:
        check_init_worker(answer)
    else:
        with pytest.raises(ExerciseFailed):
            check_init_worker(answer)


# ------------------------------------------- Exercise 2, round 2: fooling threadpoolctl
# Since the check says "Not checked" where threadpoolctl sees no BLAS (Apple's Accelerate),
# an initializer could hide the BLAS, or fake its count, by patching threadpoolctl in the
# worker. The check now reads the threads through controllers it made before any learner
# code ran there, and notices a worker that dies in the initializer.


def i_hides_blas_from_info(total_cpus, workers):
    threadpoolctl.threadpool_info = lambda: []


def i_hides_blas_from_controller(total_cpus, workers):
    original = threadpoolctl.ThreadpoolController.__init__

    def init(self):
        original(self)
        self.lib_controllers = []

    threadpoolctl.ThreadpoolController.__init__ = init


def i_fakes_the_count(total_cpus, workers):
    share = max(1, total_cpus // workers)
    real = threadpoolctl.threadpool_info
    threadpoolctl.threadpool_info = lambda: [dict(lib, num_threads=share) for lib in real()]


def i_fakes_controller_info(total_cpus, workers):
    share = max(1, total_cpus // workers)
    real = threadpoolctl.ThreadpoolController.info
    threadpoolctl.ThreadpoolController.info = lambda self: [
        dict(lib, num_threads=share) for lib in real(self)
    ]


def i_hides_threadpoolctl(total_cpus, workers):
    import sys

    sys.modules["threadpoolctl"] = None  # the check's own import in the worker then fails


def i_exits_hard(total_cpus, workers):
    os._exit(0)  # no SystemExit to catch: the pool starts another worker, again and again


def i_right_divmod_default_api(total_cpus, workers):
    share, _ = divmod(total_cpus, workers)
    threadpoolctl.threadpool_limits(share or 1)  # every API, BLAS included


INITS_ROUND2 = [
    pytest.param(i_hides_blas_from_info, False, id="patches-threadpool_info-empty"),
    pytest.param(i_hides_blas_from_controller, False, id="patches-controller-no-libs"),
    pytest.param(i_fakes_the_count, False, id="patches-threadpool_info-fake-count"),
    pytest.param(i_fakes_controller_info, False, id="patches-controller-info-fake-count"),
    pytest.param(i_hides_threadpoolctl, False, id="hides-threadpoolctl-module"),
    pytest.param(i_exits_hard, False, id="os-exit-in-initializer"),
    pytest.param(i_right_divmod_default_api, True, id="right-divmod-all-apis"),
]


@pytest.mark.parametrize(("answer", "right"), INITS_ROUND2)
def test_init_worker_round2(answer, right, capsys):
    if right:
        check_init_worker(answer)
        assert capsys.readouterr().out.startswith("Correct:")
    else:
        with pytest.raises(ExerciseFailed):
            check_init_worker(answer)
        assert "Not checked" not in capsys.readouterr().out
