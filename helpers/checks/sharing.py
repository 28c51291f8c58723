"""Checks for the exercises of chapter 06 (managers and shared memory).

Each check runs the learner's function in real spawned worker processes (through
:class:`helpers.checks.LearnerFunction`), as the exercise asks, and looks at what
arrived in the parent.
"""

from __future__ import annotations

import gc
import multiprocessing
import re
import sys
import threading
import time
from multiprocessing import shared_memory
from multiprocessing.managers import AcquirerProxy, BaseManager, DictProxy, ListProxy
from typing import Any

from helpers.checks import LearnerFunction, call_with_timeout, expect, fail, passed

__all__ = ["check_claim", "check_histogram", "HISTOGRAM_CASES"]

TIMEOUT = 30  # seconds for all workers of one check

JOBS_TWO_WORKERS = ["only-job"]  # one job, two workers: who gets the last one?
JOBS_THREE_WORKERS = [f"job-{i}" for i in range(7)]
_RENDEZVOUS_SECONDS = 0.25  # how long an unlocked call on the list waits for a partner


class _WatchedLock:
    """A lock, served by the check's manager, that knows which client thread holds it.

    The proxies a process has for one manager share that process's connection, so the
    server thread that runs a worker's ``acquire`` also runs its calls on the list.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holder: int | None = None
        self.acquisitions = 0  # numbers each acquisition, so two can be told apart

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self.acquisitions += 1
            self.holder = threading.get_ident()
        return got

    def release(self) -> None:
        self.holder = None
        self._lock.release()

    def mine(self) -> int | None:
        """The number of the acquisition the calling thread holds, or None."""
        return self.acquisitions if self.holder == threading.get_ident() else None

    def held(self) -> bool:
        return self.holder is not None


class _Rendezvous:
    """Makes two unlocked calls happen together: the first waits (briefly) for a second."""

    def __init__(self, seconds: float) -> None:
        self._cond = threading.Condition()
        self._seconds = seconds
        self._waiting = False
        self._generation = 0

    def meet(self) -> None:
        with self._cond:
            if self._waiting:  # a partner is waiting: go together
                self._waiting = False
                self._generation += 1
                self._cond.notify_all()
                return
            self._waiting = True
            generation = self._generation
            self._cond.wait_for(lambda: self._generation != generation, self._seconds)
            if self._generation == generation:  # nobody came: go alone
                self._waiting = False


class _WatchedList(list):
    """The ``todo`` list, served by the check's manager. Every call a worker makes on it
    without holding the lock first waits for another such call, so a gap between looking at
    the list and changing it is always hit by the other worker, not only when unlucky."""

    def __init__(self, items: list, lock: _WatchedLock) -> None:
        super().__init__(items)
        self._watched = lock
        self._meeting = _Rendezvous(_RENDEZVOUS_SECONDS)
        self._last_look: dict[int, int | None] = {}  # thread -> acquisition of its last look
        self.split = 0  # changes made under another acquisition than the look before them

    def _gate(self, changes: bool) -> None:
        held = self._watched.mine()
        if held is None:
            self._meeting.meet()
        thread = threading.get_ident()
        if not changes:
            self._last_look[thread] = held
            return
        looked = self._last_look.pop(thread, None)
        if looked is not None and looked != held:  # looked under the lock, changed later
            self.split += 1


_CHANGES = {
    "__delitem__",
    "__setitem__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
    "__iadd__",
    "__imul__",
}


def _gated(name: str) -> Any:
    method = getattr(list, name)
    changes = name in _CHANGES

    def call(self: _WatchedList, *args: Any, **kwargs: Any) -> Any:
        self._gate(changes)
        return method(self, *args, **kwargs)

    call.__name__ = name
    return call


for _name in ListProxy._exposed_:
    if _name in vars(list):
        setattr(_WatchedList, _name, _gated(_name))


_SERVED_LOCK: _WatchedLock | None = None
_SERVED_TODO: _WatchedList | None = None


def _make_lock() -> _WatchedLock:
    global _SERVED_LOCK
    _SERVED_LOCK = _WatchedLock()
    return _SERVED_LOCK


def _make_todo(items: list) -> _WatchedList:
    global _SERVED_TODO
    if _SERVED_LOCK is None:
        raise RuntimeError("create the Lock first")
    _SERVED_TODO = _WatchedList(items, _SERVED_LOCK)
    return _SERVED_TODO


def _todo_left() -> list:
    """What is left in the todo list, read without the rendezvous (for the check itself)."""
    return list.copy(_SERVED_TODO) if _SERVED_TODO is not None else []


def _split_steps() -> int:
    """How often a worker changed todo under another lock acquisition than its look."""
    return _SERVED_TODO.split if _SERVED_TODO is not None else 0


class _Probe:
    """Served by the check's manager: lets a worker read todo without the rendezvous."""

    def left(self) -> list:
        return _todo_left()


def _lock_held() -> bool:
    return _SERVED_LOCK is not None and _SERVED_LOCK.held()


class _ClaimManager(BaseManager):
    """The check's manager: a todo list that watches the Lock, the Lock, an owners dict."""


_ClaimManager.register("Lock", _make_lock, proxytype=AcquirerProxy)
_ClaimManager.register("Todo", _make_todo, proxytype=ListProxy)
_ClaimManager.register("dict", dict, proxytype=DictProxy)
_ClaimManager.register("Probe", _Probe)
_ClaimManager.register("lock_held", _lock_held)
_ClaimManager.register("todo_left", _todo_left)
_ClaimManager.register("split_steps", _split_steps)


def _watch_handles() -> dict[str, int]:
    """In a worker: count the ``SharedMemory`` handles the worker's code opens and closes.

    Returns the dict the counts go to. Only a ``close()`` that worked counts (one that raised
    BufferError, even if the worker swallowed it, left the handle open), and calls made by
    ``SharedMemory.__del__`` (when a handle is garbage-collected) don't: the worker must close
    on purpose.
    """
    counts = {"opened": 0, "closed": 0}
    original_init = shared_memory.SharedMemory.__init__
    original_close = shared_memory.SharedMemory.close

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        counts["opened"] += 1

    def close(self: Any) -> None:
        on_purpose = sys._getframe(1).f_code.co_name != "__del__"
        original_close(self)
        if on_purpose:
            counts["closed"] += 1

    shared_memory.SharedMemory.__init__ = init  # type: ignore[method-assign]
    shared_memory.SharedMemory.close = close  # type: ignore[method-assign]
    return counts


def _call_reporting(func: Any, args: tuple, conn: Any) -> None:
    """Worker: call ``func(*args)`` and send back (outcome, message, opened, closed): outcome
    is "ok" or the exception's type name; opened/closed count SharedMemory handles."""
    counts = _watch_handles()
    try:
        func(*args)
    except BaseException as exc:  # report anything, so nothing reaches the child's stderr
        conn.send((type(exc).__name__, str(exc), counts["opened"], counts["closed"]))
    else:
        conn.send(("ok", "", counts["opened"], counts["closed"]))
    finally:
        conn.close()


def _run_in_workers(
    func: LearnerFunction, calls: list[tuple], what: str, may_raise: frozenset = frozenset()
) -> list[tuple[str, str, int, int]]:
    """Run ``func(*args)`` for each args in ``calls``, each in its own spawned process.

    Fails with a hint if a call raises (except a ValueError from a call whose index is in
    ``may_raise``) or does not finish within TIMEOUT seconds (the process is then
    terminated, so a check never hangs). Returns each call's report (see _call_reporting).
    """
    ctx = multiprocessing.get_context("spawn")
    workers = []
    deadline = time.monotonic() + TIMEOUT
    try:
        for args in calls:
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_call_reporting, args=(func, args, sender))
            proc.start()
            sender.close()
            workers.append((proc, receiver))
        reports = []
        for _proc, receiver in workers:
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                fail(f"{what} did not finish within {TIMEOUT} s in a worker process")
            try:
                reports.append(receiver.recv())
            except EOFError:
                fail(f"the worker process running {what} died without an answer")
    finally:
        for proc, receiver in workers:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join()
            receiver.close()
    for index, (kind, message, _, _) in enumerate(reports):
        if kind == "NameError":
            fail(
                f"{what} raised NameError in the worker ({message}). The worker is a fresh "
                "process: it knows the modules your function uses that the notebook imported "
                "(np, shared_memory, ...), but no variables from the notebook."
            )
        if kind == "BufferError":
            fail(
                f"{what} raised BufferError in the worker ({message}): close() can't unmap "
                "the block while a view of it is alive. Drop your NumPy view (del it) first."
            )
        if kind == "FileNotFoundError":
            fail(
                f"{what} could not find a shared memory block ({message}). Attach with "
                "SharedMemory(name=name), and never unlink() in a worker: only the process "
                "that created the block unlinks it, once, after every worker is done."
            )
        if kind not in ("ok", "ValueError") or (kind == "ValueError" and index not in may_raise):
            fail(f"{what}{calls[index][1:]} raised {kind} in the worker process: {message}")
    return reports


def _learner(func: Any, name: str) -> LearnerFunction:
    if func is None or not callable(func):
        fail(f"define the function {name} first (run its cell), then run this check")
    try:
        return LearnerFunction(func)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


class _PatientLock:
    """A local stand-in for a manager Lock that gives up after a second instead of hanging."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, 1.0 if blocking and timeout < 0 else timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        if not self.acquire():
            raise TimeoutError("the lock was not released within a second")
        return True

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _first_call(func: Any) -> dict[str, Any]:
    """Call ``func`` once on plain local objects, in a thread, before starting any process:
    an answer that does nothing is turned down at once."""
    todo, owners, lock = ["a", "b"], {}, _PatientLock()
    outcome = call_with_timeout(func, (todo, owners, lock, "w0"), 2)
    outcome.update(todo=todo, owners=owners, lock=lock)
    return outcome


def _claim_until_none(
    func: Any,
    todo: Any,
    owners: Any,
    lock: Any,
    worker: str,
    limit: int,
    start: Any,
    probe: Any,
    conn: Any,
) -> None:
    """Worker: call ``func`` until it returns None (at most ``limit`` times); send back
    ("ok", jobs, what todo held when it returned None) or (error type, message)."""
    try:
        start.wait(timeout=TIMEOUT)
        jobs = []
        for _ in range(limit):
            job = func(todo, owners, lock, worker)
            if job is None:
                break
            jobs.append(job)
        else:
            conn.send(("endless", jobs))
            return
        conn.send(("ok", jobs, probe.left()))
    except BaseException as exc:  # report anything, so nothing reaches the child's stderr
        conn.send((type(exc).__name__, str(exc)))
    finally:
        conn.close()


def _run_claimers(learner: LearnerFunction, jobs: list[str], n_workers: int) -> dict[str, Any]:
    """Run ``n_workers`` spawned workers claiming ``jobs``; return what each got and the
    state of the todo list, the owners dict and the lock afterwards."""
    ctx = multiprocessing.get_context("spawn")
    with _ClaimManager(ctx=ctx) as manager:
        lock = manager.Lock()
        todo = manager.Todo(list(jobs))
        owners = manager.dict()
        start = ctx.Barrier(n_workers)
        probe = manager.Probe()
        workers, reports = [], {}
        deadline = time.monotonic() + TIMEOUT
        try:
            for i in range(n_workers):
                receiver, sender = ctx.Pipe(duplex=False)
                name = f"worker-{i}"
                args = (learner, todo, owners, lock, name, len(jobs) + 3, start, probe, sender)
                proc = ctx.Process(target=_claim_until_none, args=args)
                proc.start()
                sender.close()
                workers.append((name, proc, receiver))
            for name, _proc, receiver in workers:
                if not receiver.poll(max(0.0, deadline - time.monotonic())):
                    fail(
                        f"claim did not finish within {TIMEOUT} s in the workers: a worker that "
                        "keeps the lock (or never returns None) stops everyone"
                    )
                try:
                    reports[name] = receiver.recv()
                except EOFError:
                    fail("a worker process running claim died without an answer")
        finally:
            for _name, proc, receiver in workers:
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
                receiver.close()
        left = manager.todo_left()._getvalue()
        owned = owners.copy()
        held = manager.lock_held()._getvalue()
        split = manager.split_steps()._getvalue()
    return {"reports": reports, "left": left, "owners": owned, "held": held, "split": split}


def check_claim(func: Any) -> None:
    """Exercise 1: ``claim(todo, owners, lock, worker)`` takes each job exactly once.

    Spawned workers call it until it returns None: 2 workers for 1 job, then 3 for 7 jobs.
    The todo list is served by the check's manager and makes every call on it made without
    the lock wait for another such call, so a gap between looking at the list and taking
    from it is always hit. Judges the outcome: no crash, every job returned by exactly one
    worker, the owners dict says who, the list empty, the lock free.
    """
    learner = _learner(func, "claim")
    first = _first_call(func)
    if "error" in first:
        error = first["error"]
        fail(f"claim(['a', 'b'], {{}}, lock, 'w0') raised {type(error).__name__}: {error}")
    if "value" not in first:
        fail("claim(['a', 'b'], {}, lock, 'w0') did not return within 2 s")
    if first["value"] is None:
        fail(
            "claim returned None although jobs were left: None means 'nothing left'. Take one "
            "job out of todo, note its owner and return the job."
        )
    released = "every other worker would wait for ever. Release it on every path (with lock:)"
    expect(
        first["lock"].acquire(False),
        f"claim(['a', 'b'], {{}}, lock, 'w0') returned with the lock still held: {released}",
    )
    first["lock"].release()
    lock = _PatientLock()
    empty = call_with_timeout(func, ([], {}, lock, "w0"), 2)
    if "error" in empty:
        error = empty["error"]
        fail(f"claim([], {{}}, lock, 'w0') raised {type(error).__name__}: {error}")
    if not empty:
        fail("claim([], {}, lock, 'w0') did not return within 2 s")
    expect(
        empty["value"] is None,
        f"claim([], {{}}, lock, 'w0') returned {empty['value']!r}: with todo empty, return None",
    )
    expect(
        lock.acquire(False),
        f"claim([], {{}}, lock, 'w0') returned None with the lock still held: {released}",
    )
    lock.release()
    for jobs, n_workers in ((JOBS_TWO_WORKERS, 2), (JOBS_THREE_WORKERS, 3)):
        outcome = _run_claimers(learner, jobs, n_workers)
        setting = f"{n_workers} workers, {len(jobs)} job(s)"
        for name, (kind, detail, *_) in sorted(outcome["reports"].items()):
            if kind == "endless":
                fail(
                    f"{setting}: claim kept returning jobs after all {len(jobs)} were taken "
                    f"({detail[-3:]}...): return None once todo is empty"
                )
            if kind != "ok":
                fail(
                    f"{setting}: claim raised {kind} in {name}: {detail}. Another worker "
                    "changed todo between this worker's look at it and its take: make those "
                    "one step that no other worker can get between."
                )
        for name, (_, _, *rest) in sorted(outcome["reports"].items()):
            if rest and rest[0]:
                fail(
                    f"{setting}: claim returned None in {name} while todo still held "
                    f"{rest[0]}: None means 'no job is left', and that worker stopped with "
                    "work to do. Return None only when todo is empty (another worker "
                    "getting in between is no reason), and make looking and taking one step."
                )
        expect(
            not outcome["split"],
            f"{setting}: claim looked at todo while holding the lock, let the lock go, and "
            "took it again to change todo: another worker can get in between. Look and take "
            "in one `with lock:` block.",
        )
        got = [job for _, jobs_got, *_ in outcome["reports"].values() for job in jobs_got]
        twice = sorted({job for job in got if got.count(job) > 1}, key=repr)
        if twice:
            fail(
                f"{setting}: {twice[0]!r} was returned by more than one call: two workers saw "
                "it before either took it away. Make looking and taking one step."
            )
        extra = sorted(set(got) - set(jobs), key=repr)
        if extra:
            fail(f"{setting}: claim returned {extra[0]!r}, which is not a job in todo")
        missing = sorted(set(jobs) - set(got))
        if missing:
            fail(
                f"{setting}: nobody got {missing[0]!r} (still in todo: {outcome['left']}). "
                "Every job should be returned by exactly one call."
            )
        expect(
            outcome["left"] == [],
            f"{setting}: todo still holds {outcome['left']} after every job was returned: "
            "remove the job you take from todo",
        )
        want = {
            job: name for name, (_, jobs_got, *_) in outcome["reports"].items() for job in jobs_got
        }
        expect(
            outcome["owners"] == want,
            f"{setting}: owners should map each job to the worker that got it, {want}, got "
            f"{outcome['owners']}",
        )
        expect(
            not outcome["held"],
            f"{setting}: the lock was still held after every worker had finished: release it "
            "(with lock: does it for you)",
        )
    passed(
        "2 workers racing for 1 job and 3 for 7: every job went to exactly one worker, the "
        "owners dict says who, nothing was left in todo, and nobody crashed."
    )


# Each case: (shape, the values of each row, the bad value in each row or None). The
# workers of one case run at once; rows with a bad value must stay untouched.
# Two shapes, so that an answer written for one shape fails the other; the small one first,
# so most wrong answers are turned down after starting two processes, not five.
HISTOGRAM_CASES = (
    ((2, 3), ([2, 0, 2, 2], [0, 1, 3]), (None, 3)),
    (
        (5, 8),
        ([0, 1, 1, 2, 3, 3, 3, 7, 7, 5], [4, 4, 4, 4, 0, 6, 6, 2], [1, 2, 8, 3], [], [5, -2]),
        (None, None, 8, None, -2),
    ),
)


def _histogram_case(
    learner: LearnerFunction, shape: tuple[int, int], chunks: tuple, bad: tuple
) -> None:
    """Run one case of check_histogram; fail with a hint if any row or worker is wrong."""
    import numpy as np

    nbytes = shape[0] * shape[1] * np.dtype(np.int64).itemsize
    shm = shared_memory.SharedMemory(create=True, size=nbytes)
    unlinked_by_worker = False
    try:
        counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
        counts[:] = 0
        calls = [(shm.name, shape, row, list(chunk)) for row, chunk in enumerate(chunks)]
        may_raise = frozenset(row for row, value in enumerate(bad) if value is not None)
        try:
            reports = _run_in_workers(learner, calls, "histogram_into", may_raise)
        finally:
            result = counts.copy()
            del counts
    finally:
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            unlinked_by_worker = True
    expect(
        not unlinked_by_worker,
        "the shared memory block was already unlinked when the workers were done: a worker "
        "must only close() its handle; the process that created the block unlinks it, once.",
    )
    n_bins = shape[1]
    for row, (chunk, value, report) in enumerate(zip(chunks, bad, reports, strict=True)):
        kind, message, opened, closed = report
        call = f"histogram_into(name, {shape}, {row}, {list(chunk)})"
        if value is None:
            want = np.bincount(np.asarray(chunk, dtype=np.int64), minlength=n_bins)
            if not result.any() and np.any(want):
                fail(
                    f"the shared array is still all zeros after {call}: nothing reached "
                    "shared memory. Make a NumPy view on the block and write into its row "
                    "`row`, rather than into a new array."
                )
            expect(
                np.array_equal(result[row], want),
                f"after {call} row {row} should hold the counts {want.tolist()}, got "
                f"{result[row].tolist()}. Each worker writes only its own row.",
            )
        else:
            expect(
                kind == "ValueError",
                f"{call} should raise ValueError: {value} is not a bin of 0..{n_bins - 1}",
            )
            # Find the value as a number of its own: not in a copy of the shape or of the
            # whole chunk, and a NumPy integer (np.int64(8) in NumPy 2) counts as the number.
            plain = re.sub(r"\b(?:np|numpy)\.u?int\d*\((-?\d+)\)", r"\1", message)
            for shown in (str(shape), str(list(chunk)), str(tuple(chunk))):
                plain = plain.replace(shown, " ")
            expect(
                re.search(rf"(?<![\w.-]){value}(?!\w|\.\d)", plain) is not None,
                f"{call} raised ValueError({message!r}); say which value is out of range "
                f"({value}), so whoever reads the error can find it",
            )
            expect(
                not result[row].any(),
                f"{call} raised, but row {row} was changed to {result[row].tolist()}: check "
                "every value before you write anything",
            )
        expect(
            closed >= opened,
            f"{call} opened {opened} SharedMemory handle(s) and closed {closed}: every "
            "handle a worker opens must be closed, also when it raises (try/finally), after "
            "dropping its views.",
        )


def _histogram_first_call(func: Any) -> None:
    """Call ``func`` once here, in a thread, on a small block before starting any process:
    an answer that writes nothing is turned down at once."""
    import numpy as np

    shape, values = (2, 8), [1, 3, 3]
    # A handle the learner's code leaves with a live view fails in SharedMemory.__del__
    # ("Exception ignored ..."), when the call returns or when the learner's frame (held by
    # an error's traceback) is dropped below: the workers' count reports it instead.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        shm = shared_memory.SharedMemory(create=True, size=shape[0] * shape[1] * 8)
        try:
            counts = np.ndarray(shape, dtype=np.int64, buffer=shm.buf)
            counts[:] = 0
            outcome = call_with_timeout(func, (shm.name, shape, 1, values), 2)
            wrote = counts.copy()
            del counts
        finally:
            shm.close()
            try:
                shm.unlink()
            except FileNotFoundError:
                fail("histogram_into unlinked the block: a worker only close()s its handle")
        error = outcome.get("error")
        problem = f"raised {type(error).__name__}: {error}" if error is not None else ""
        del error
        outcome.clear()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    if problem:
        fail(f"histogram_into(name, {shape}, 1, {values}) {problem}")
    if not wrote.any():
        fail(
            f"histogram_into(name, {shape}, 1, {values}) left the shared array all zeros: "
            "nothing reached shared memory. Attach to the block by name, make a NumPy view "
            "on it and write into the row."
        )


def check_histogram(func: Any) -> None:
    """Exercise 2: ``histogram_into(name, shape, row, values)`` counts into shared memory,
    refuses bad values without writing, and always closes its handle.

    For each case, creates an int64 array of ``shape`` (one row per worker) in a shared
    memory block, runs the function in spawned workers at once, one row each, then compares
    every row with ``numpy.bincount``: rows with a value outside the bins must be left at
    zero and their worker must raise ValueError naming it. The check creates the block and
    unlinks it (exactly once).
    """
    learner = _learner(func, "histogram_into")
    _histogram_first_call(func)
    for shape, chunks, bad in HISTOGRAM_CASES:
        _histogram_case(learner, shape, chunks, bad)
    passed(
        "every good row holds its counts (an empty chunk too), every chunk with a value "
        "outside the bins raised ValueError naming it and left its row alone, and every "
        "worker closed its handle, even when it raised."
    )
