"""Red team for chapter 10's exercises: wrong answers the checks must reject, unusual
right answers they must accept. Each case runs the real check as the notebook's check
cell calls it."""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import pickle
import pickletools
import queue
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.pitfalls import check_collect_squares, check_preflight, check_run_batch
from helpers.pitfalls import check_picklable, risky_square, square_into

# --------------------------------------------------------------------------- Exercise 1


def _main_refs(obj, seen=None):
    """Shallow-to-deep walk used by several answers: does obj refer to __main__?"""
    if seen is None:
        seen = set()
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    if getattr(obj, "__module__", None) == "__main__" and (isinstance(obj, type) or callable(obj)):
        return True
    if type(obj).__module__ == "__main__":
        return True
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_main_refs(x, seen) for x in obj)
    if isinstance(obj, dict):
        return any(_main_refs(k, seen) or _main_refs(v, seen) for k, v in obj.items())
    if isinstance(obj, functools.partial):
        return _main_refs(obj.func, seen) or _main_refs(obj.args, seen)
    if hasattr(obj, "__self__") and hasattr(obj, "__func__"):
        return _main_refs(obj.__self__, seen) or _main_refs(obj.__func__, seen)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return _main_refs(vars(obj), seen)
    return False


def pf_empty(tasks):
    return {}


def pf_all(tasks):
    return {i: "may fail" for i in range(len(tasks))}


def pf_pickle_func_only(tasks):
    out = {}
    for i, (func, _args) in enumerate(tasks):
        r = check_picklable(func)
        if not r.ok:
            out[i] = r.error
        elif getattr(func, "__module__", None) == "__main__":
            out[i] = "defined in __main__"
    return out


def pf_pickle_only(tasks):
    out = {}
    for i, task in enumerate(tasks):
        r = check_picklable(task)
        if not r.ok:
            out[i] = r.error
    return out


def pf_main_func_only(tasks):
    out = {}
    for i, (func, args) in enumerate(tasks):
        r = check_picklable((func, args))
        if not r.ok:
            out[i] = r.error
        elif getattr(func, "__module__", None) == "__main__":
            out[i] = "function defined in __main__"
    return out


def pf_shallow_args(tasks):
    out = {}
    for i, (func, args) in enumerate(tasks):
        r = check_picklable((func, args))
        if not r.ok:
            out[i] = r.error
        elif getattr(func, "__module__", None) == "__main__" or any(
            type(a).__module__ == "__main__" or getattr(a, "__module__", None) == "__main__"
            for a in args
        ):
            out[i] = "refers to __main__"
    return out


def pf_containers_only(tasks):
    """Walks lists, tuples and dicts, but not object attributes, partials, methods."""

    def refs(o):
        if type(o).__module__ == "__main__" or getattr(o, "__module__", None) == "__main__":
            return True
        if isinstance(o, (list, tuple, set)):
            return any(refs(x) for x in o)
        if isinstance(o, dict):
            return any(refs(v) for v in o.values())
        return False

    out = {}
    for i, (func, args) in enumerate(tasks):
        r = check_picklable((func, args))
        if not r.ok:
            out[i] = r.error
        elif refs(func) or refs(args):
            out[i] = "refers to __main__"
    return out


def pf_one_based(tasks):
    out = {}
    for i, task in enumerate(tasks, start=1):
        r = check_picklable(task)
        if not r.ok:
            out[i] = r.error
        elif _main_refs(task):
            out[i] = "refers to __main__"
    return out


def pf_empty_reason(tasks):
    out = {}
    for i, task in enumerate(tasks):
        if not check_picklable(task).ok or _main_refs(task):
            out[i] = ""
    return out


def pf_bytes_contains_main(tasks):
    """Searches the pickle for the bytes b'__main__': an argument string that merely
    contains '__main__' is flagged too."""
    out = {}
    for i, task in enumerate(tasks):
        try:
            data = pickle.dumps(task)
        except Exception as exc:
            out[i] = f"{type(exc).__name__}: {exc}"
            continue
        if b"__main__" in data:
            out[i] = "refers to __main__"
    return out


def pf_plain_pickle_picklingerror_only(tasks):
    """Catches only PicklingError: other pickling failures escape as exceptions."""
    out = {}
    for i, task in enumerate(tasks):
        try:
            pickle.dumps(task)
        except pickle.PicklingError as exc:
            out[i] = str(exc)
            continue
        if _main_refs(task):
            out[i] = "refers to __main__"
    return out


def pf_main_classes_only(tasks):
    """Flags instances of __main__ classes (like Point) but not __main__ functions."""
    out = {}
    for i, task in enumerate(tasks):
        r = check_picklable(task)
        if not r.ok:
            out[i] = r.error
            continue

        def inst(o):
            if type(o).__module__ == "__main__":
                return True
            if isinstance(o, (list, tuple, set)):
                return any(inst(x) for x in o)
            if isinstance(o, dict):
                return any(inst(v) for v in o.values())
            return False

        if inst(task):
            out[i] = "instance of a __main__ class"
    return out


# right answers


def pf_pickletools(tasks):
    """Pickle with multiprocessing's pickler, then read the opcodes: any global from
    module __main__ fails under spawn."""
    out = {}
    for i, task in enumerate(tasks):
        r = check_picklable(task)
        if not r.ok:
            out[i] = r.error
            continue
        data = bytes(multiprocessing.reduction.ForkingPickler.dumps(task))
        strings = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                continue
            elif op.name == "STACK_GLOBAL":
                if len(strings) >= 2 and strings[-2] == "__main__":
                    out[i] = f"needs __main__.{strings[-1]}, which a spawn worker lacks"
                    break
            elif op.name == "GLOBAL":
                if arg.split(" ")[0] == "__main__":
                    out[i] = f"needs {arg}, which a spawn worker lacks"
                    break
            else:
                pass
    return out


class _MainSpy(pickle.Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self.found = None

    def reducer_override(self, obj):
        if (isinstance(obj, type) or callable(obj)) and getattr(
            obj, "__module__", None
        ) == "__main__":
            self.found = getattr(obj, "__qualname__", repr(obj))
        return NotImplemented


def pf_reducer_override(tasks):
    import io

    out = {}
    for i, task in enumerate(tasks):
        r = check_picklable(task)
        if not r.ok:
            out[i] = r.error
            continue
        spy = _MainSpy(io.BytesIO())
        spy.dump(task)
        if spy.found:
            out[i] = f"refers to __main__.{spy.found}"
    return out


def pf_numpy_keys(tasks):
    """Right, but the keys are NumPy integers and the result is a dict subclass."""
    import collections

    out = collections.OrderedDict()
    for i, task in zip(np.arange(len(tasks)), tasks, strict=True):
        r = pf_reducer_override([task])
        if r:
            out[i] = r[0]
    return out


# --------------------------------------------------------------------------- Exercise 2


def cs_join_no_timeout(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    out = []
    while not q.empty():
        out.append(q.get())
    return sorted(out)


def cs_count_no_timeout(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = [q.get() for _ in numbers]
    for p in procs:
        p.join()
    return sorted(out)


def cs_serial(numbers, workers=2):
    return sorted(risky_square(x) for x in numbers)


def cs_one_worker(numbers, workers=2):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=square_into, args=(list(numbers), q))
    p.start()
    out = []
    try:
        while len(out) < len(numbers):
            try:
                out.append(q.get(timeout=0.05))
            except queue.Empty:
                if p.exitcode not in (None, 0):
                    raise RuntimeError(f"worker failed: {p.exitcode}") from None
        p.join(1)
    finally:
        if p.is_alive():
            p.terminate()
            p.join()
    return sorted(out)


def cs_ignores_exitcode(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    while any(p.is_alive() for p in procs):
        try:
            out.append(q.get(timeout=0.05))
        except queue.Empty:
            pass
    for p in procs:
        p.join()
    while not q.empty():
        out.append(q.get())
    return sorted(out)


def cs_partial_on_timeout(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    try:
        while len(out) < len(numbers):
            out.append(q.get(timeout=0.5))
    except queue.Empty:
        pass  # give back what arrived
    finally:
        for p in procs:
            p.terminate()
            p.join()
    return sorted(out)


def cs_only_exitcode_1(numbers, workers=2):
    """Raises for a bad record (exit code 1) but not for a killed worker."""
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    try:
        while any(p.is_alive() for p in procs) or not q.empty():
            try:
                out.append(q.get(timeout=0.05))
            except queue.Empty:
                pass
            if any(p.exitcode == 1 for p in procs):
                raise RuntimeError("a worker raised")
    finally:
        for p in procs:
            p.terminate()
            p.join()
    return sorted(out)


def cs_raise_leaves_running(numbers, workers=2):
    """Raises as soon as a worker fails, without stopping (or draining for) the others."""
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    while len(out) < len(numbers):
        try:
            out.append(q.get(timeout=0.05))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a worker failed") from None
    for p in procs:
        p.join()
    return sorted(out)


def cs_daemon_never_joined(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q), daemon=True)
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    while len(out) < len(numbers):
        try:
            out.append(q.get(timeout=0.05))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a worker failed") from None
    return sorted(out)


def cs_dedupe(numbers, workers=2):
    """Right except it returns a set's worth: equal squares (3 and -3 aside, duplicates
    in the input) collapse."""
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    try:
        while len(out) < len(numbers):
            try:
                out.append(q.get(timeout=0.05))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a worker failed") from None
        for p in procs:
            p.join(1)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return sorted(set(out))


# right answers


def cs_drain_while_alive(numbers, workers=2):
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    out = []
    try:
        while len(out) < len(numbers):
            try:
                out.append(q.get(timeout=0.05))
            except queue.Empty:
                bad = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if bad:
                    raise RuntimeError(f"a worker failed, exit codes {bad}") from None
        for p in procs:
            p.join(timeout=2)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return sorted(out)


def cs_sentinels(numbers, workers=2):
    """Drains, and waits on the workers' sentinels with connection.wait; checks exit codes
    once all have ended; a deadline of its own."""
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context()
    q = ctx.Queue()
    procs = [
        ctx.Process(target=square_into, args=(list(numbers)[i::workers], q))
        for i in range(int(workers))
    ]
    for p in procs:
        p.start()
    out = []
    deadline = time.monotonic() + 30
    try:
        running = {p.sentinel: p for p in procs}
        while running:
            if time.monotonic() > deadline:
                raise TimeoutError("workers took too long")
            while True:
                try:
                    out.append(q.get_nowait())
                except queue.Empty:
                    break
            for s in wait(list(running), timeout=0.01):
                p = running.pop(s)
                p.join()
                if p.exitcode != 0:
                    raise ChildProcessError(f"worker exit code {p.exitcode}")
        while len(out) < len(numbers):
            out.append(q.get(timeout=1))
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
        q.close()
    return sorted(out)


def cs_threads_drain(numbers, workers=2):
    """A thread drains the queue while the main thread joins the workers one by one."""
    q = multiprocessing.Queue()
    n = len(numbers)
    procs = [
        multiprocessing.Process(target=square_into, args=(numbers[i::workers], q))
        for i in range(workers)
    ]
    out = []
    stop = threading.Event()

    def drain():
        while not stop.is_set() and len(out) < n:
            try:
                out.append(q.get(timeout=0.05))
            except queue.Empty:
                pass

    t = threading.Thread(target=drain)
    for p in procs:
        p.start()
    t.start()
    try:
        for p in procs:
            while p.exitcode is None:
                p.join(0.05)
                if any(o.exitcode not in (None, 0) for o in procs):
                    raise RuntimeError("a worker failed")
        t.join(5)
        if len(out) < n:
            raise RuntimeError("squares missing")
    finally:
        stop.set()
        t.join()
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return sorted(out)


# --------------------------------------------------------------------------- Exercise 3


def rb_skeleton_timeout(tasks):
    with multiprocessing.Pool(2) as pool:
        pending = [pool.apply_async(func, args) for func, args in tasks]
        return [p.get(timeout=1) for p in pending]


def rb_executor_no_resubmit(tasks):
    with ProcessPoolExecutor(2) as ex:
        futs = [ex.submit(f, *a) for f, a in tasks]
        out = []
        for fut in futs:
            try:
                out.append(fut.result(timeout=2))
            except Exception as exc:
                out.append(exc)
        return out


def rb_wrap_exceptions(tasks):
    out = rb_executor_isolate(tasks)
    return [RuntimeError(str(r)) if isinstance(r, Exception) else r for r in out]


def rb_exception_strings(tasks):
    out = rb_executor_isolate(tasks)
    return [f"{type(r).__name__}: {r}" if isinstance(r, Exception) else r for r in out]


def rb_none_for_killed(tasks):
    out = rb_executor_isolate(tasks)
    return [None if isinstance(r, BrokenProcessPool) else r for r in out]


def rb_completion_order(tasks):
    out = rb_executor_isolate(tasks)
    return sorted(out, key=lambda r: (isinstance(r, Exception), str(r)))


def rb_serial_in_parent(tasks):
    out = []
    for f, a in tasks:
        try:
            out.append(f(*a))
        except Exception as exc:
            out.append(exc)
    return out


def rb_never_terminates(tasks):
    pool = multiprocessing.Pool(2)
    pending = [pool.apply_async(func, args) for func, args in tasks]
    out = []
    deadline = time.monotonic() + 1
    for p in pending:
        try:
            out.append(p.get(timeout=max(0.01, deadline - time.monotonic())))
        except multiprocessing.TimeoutError:
            out.append(ChildProcessError("worker killed"))
        except Exception as exc:
            out.append(exc)
    return out


def rb_retry_all_lost_together(tasks):
    """Resubmits every lost task to a fresh executor, bounded to 3 rounds, all together:
    an innocent task lost with a killer keeps getting lost with it."""
    out = [None] * len(tasks)
    todo = list(range(len(tasks)))
    for _ in range(3):
        lost = []
        with ProcessPoolExecutor(2) as ex:
            futs = {i: ex.submit(tasks[i][0], *tasks[i][1]) for i in todo}
            for i, fut in futs.items():
                try:
                    out[i] = fut.result(timeout=5)
                except BrokenProcessPool as exc:
                    out[i] = exc
                    lost.append(i)
                except Exception as exc:
                    out[i] = exc
        if not lost:
            break
        todo = lost
    return out


# right answers


def rb_pool_deadline_timeout(tasks):
    """A Pool with one overall deadline; a task not done by then (its worker was killed,
    the Pool waits for it forever) gets TimeoutError. Right for batches that take well
    under the deadline, which the statement promises."""
    pool = multiprocessing.Pool(2)
    try:
        pending = [pool.apply_async(func, args) for func, args in tasks]
        out = []
        deadline = time.monotonic() + 1.5
        for p in pending:
            try:
                out.append(p.get(timeout=max(0.01, deadline - time.monotonic())))
            except multiprocessing.TimeoutError as exc:
                out.append(exc)
            except Exception as exc:
                out.append(exc)
        return out
    finally:
        pool.terminate()
        pool.join()


def rb_executor_isolate(tasks):
    """Run the batch; each task lost to a broken pool runs again alone in a fresh
    one-worker executor: if it breaks that one too, it was the killer."""
    out = [None] * len(tasks)
    lost = []
    with ProcessPoolExecutor(2) as ex:
        futs = [ex.submit(f, *a) for f, a in tasks]
        for i, fut in enumerate(futs):
            try:
                out[i] = fut.result(timeout=10)
            except BrokenProcessPool:
                lost.append(i)
            except Exception as exc:
                out[i] = exc
    for i in lost:
        with ProcessPoolExecutor(1) as ex:
            fut = ex.submit(tasks[i][0], *tasks[i][1])
            try:
                out[i] = fut.result(timeout=10)
            except Exception as exc:
                out[i] = exc
    return out


def rb_executor_per_task(tasks):
    """Every task in its own one-worker executor, two at a time on threads."""

    def one(task):
        func, args = task
        with ProcessPoolExecutor(1) as ex:
            try:
                return ex.submit(func, *args).result(timeout=10)
            except Exception as exc:
                return exc

    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        return list(threads.map(one, tasks))


def rb_process_per_task(tasks):
    """Each task in a Process of its own; a pipe brings back the result or the
    exception (pickled); an exit without a report is a killed worker."""
    ctx = multiprocessing.get_context()
    out = []
    for func, args in tasks:
        with ProcessPoolExecutor(1, mp_context=ctx) as ex:
            fut = ex.submit(func, *args)
            try:
                out.append(fut.result(timeout=10))
            except BrokenProcessPool as exc:
                out.append(ChildProcessError(f"worker killed: {exc}"))
            except Exception as exc:
                out.append(exc)
    return out


# --------------------------------------------------------------------------- the cases

WRONG = {
    "preflight": [
        ("empty-dict", pf_empty),
        ("flags-everything", pf_all),
        ("pickles-function-only", pf_pickle_func_only),
        ("pickle-only-no-main", pf_pickle_only),
        ("main-function-only", pf_main_func_only),
        ("shallow-args", pf_shallow_args),
        ("containers-only-not-attributes", pf_containers_only),
        ("one-based-index", pf_one_based),
        ("empty-reason", pf_empty_reason),
        ("bytes-contain-main", pf_bytes_contains_main),
        ("catches-picklingerror-only", pf_plain_pickle_picklingerror_only),
        ("main-classes-not-functions", pf_main_classes_only),
    ],
    "collect_squares": [
        ("join-without-timeout", cs_join_no_timeout),
        ("get-count-no-timeout", cs_count_no_timeout),
        ("serial", cs_serial),
        ("one-worker", cs_one_worker),
        ("ignores-exitcode", cs_ignores_exitcode),
        ("partial-on-timeout", cs_partial_on_timeout),
        ("only-exitcode-1", cs_only_exitcode_1),
        ("raise-leaves-running", cs_raise_leaves_running),
        ("daemon-never-joined", cs_daemon_never_joined),
        ("dedupe", cs_dedupe),
    ],
    "run_batch": [
        ("get-timeout-raises", rb_skeleton_timeout),
        ("executor-no-resubmit", rb_executor_no_resubmit),
        ("wraps-valueerror", rb_wrap_exceptions),
        ("exception-strings", rb_exception_strings),
        ("none-for-killed", rb_none_for_killed),
        ("completion-order", rb_completion_order),
        ("serial-in-parent", rb_serial_in_parent),
        ("never-terminates", rb_never_terminates),
        ("retry-lost-together", rb_retry_all_lost_together),
    ],
}
RIGHT = {
    "preflight": [
        ("pickletools-opcodes", pf_pickletools),
        ("reducer-override-spy", pf_reducer_override),
        ("numpy-int-keys", pf_numpy_keys),
    ],
    "collect_squares": [
        ("drain-while-alive", cs_drain_while_alive),
        ("sentinels-wait", cs_sentinels),
        ("drain-thread", cs_threads_drain),
    ],
    "run_batch": [
        ("executor-isolate-lost", rb_executor_isolate),
        ("executor-per-task", rb_executor_per_task),
        ("process-per-task", rb_process_per_task),
        # The chapter's own table offers get(timeout=...) for a Pool that lost a task,
        # and the statement promises batches well under a second: a deadline is fair.
        ("pool-overall-deadline", rb_pool_deadline_timeout),
    ],
}
CHECKS = {
    "preflight": check_preflight,
    "collect_squares": check_collect_squares,
    "run_batch": check_run_batch,
}


def _cases(table):
    return [
        pytest.param(name, answer, id=f"{name}-{trick}")
        for name, answers in table.items()
        for trick, answer in answers
    ]


@pytest.mark.parametrize(("exercise", "answer"), _cases(WRONG))
def test_wrong_answer_rejected(exercise, answer):
    with pytest.raises(ExerciseFailed):
        CHECKS[exercise](answer)


@pytest.mark.parametrize(("exercise", "answer"), _cases(RIGHT))
def test_right_answer_accepted(exercise, answer):
    CHECKS[exercise](answer)
