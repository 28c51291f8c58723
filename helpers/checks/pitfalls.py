"""Checks for the exercises of chapter 10 (pitfalls and debugging)."""

from __future__ import annotations

import functools
import multiprocessing
import operator
import os
import signal
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from helpers.checks import (
    LearnerFunction,
    _importable,
    expect,
    fail,
    passed,
    require_function,
)
from helpers.pitfalls import (
    Account,
    checked_sqrt,
    kill_self,
    risky_square,
    slow_square,
    square,
    use_lock,
)

__all__ = ["preflight_tasks", "check_preflight", "check_collect_squares", "check_run_batch"]

# Time limits under spawn are this many times those under fork: a spawn worker starts a
# fresh interpreter that imports the helpers, which on a loaded machine takes a second or
# more, and a right answer may start several (a fresh executor per lost task).
SPAWN_FACTOR = 3


_MAIN_SOURCE = """
def clean_row(row):
    return row.strip()


class Reading:
    def __init__(self, value):
        self.value = value
"""


@contextmanager
def _defined_in_main() -> Iterator[dict[str, Any]]:
    """Define ``clean_row`` and ``Reading`` in ``__main__``, as a notebook cell would.

    They pickle (by name, as ``__main__.clean_row``), but a spawn worker can't import
    them. Whatever ``__main__`` had under those names is put back afterwards.
    """
    main = sys.modules["__main__"]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(_MAIN_SOURCE, namespace)
    names = ("clean_row", "Reading")
    saved = {name: main.__dict__[name] for name in names if name in main.__dict__}
    for name in names:
        setattr(main, name, namespace[name])
    try:
        yield namespace
    finally:
        for name in names:
            if name in saved:
                setattr(main, name, saved[name])
            else:
                delattr(main, name)


def preflight_tasks(main: dict[str, Any]) -> tuple[list[tuple[Any, tuple]], dict[int, str]]:
    """The batch check_preflight gives the learner, and what must be reported for it.

    ``main`` holds ``clean_row`` and ``Reading`` from :func:`_defined_in_main`. Returns
    ``(tasks, expected)``: ``expected`` maps the index of each task that can't reach a
    spawn worker to words one of which its reason must contain. The caller must close
    the open file (``tasks[2][1][0]``) when done.
    """
    clean_row, reading = main["clean_row"], main["Reading"]
    account = Account(0)
    account.last_reading = reading(7)  # an attribute: pickled with the object
    tasks = [
        (square, (3,)),  # fine
        (lambda x: x * 2, (4,)),  # the function is a lambda
        (square, (open(os.devnull),)),  # an open file as the argument
        (Account(5).deposit, (2,)),  # fine: a bound method of an importable class
        (clean_row, (" a ",)),  # pickles, but a spawn worker can't import __main__.clean_row
        (square, ((x for x in range(3)),)),  # a generator as the argument
        (len, ([1, 2, reading(3)],)),  # pickles; deep inside: an instance of __main__.Reading
        (use_lock, (multiprocessing.Lock(), 1)),  # a multiprocessing lock as a task argument
        (square, (threading.Lock(),)),  # a thread lock
        (sum, ([1, 2, 3],)),  # fine
        (Account(1).deposit, (reading(2).value,)),  # fine: the value is a plain int
        (functools.partial(clean_row), (" b ",)),  # a wrapper around __main__.clean_row
        (account.deposit, (1,)),  # the bound object's attribute is a __main__.Reading
        (len, ("__main__",)),  # fine: only a string that says __main__
    ]
    expected = {
        1: "lambda",
        2: "TextIOWrapper",
        4: "__main__ clean_row",
        5: "generator",
        6: "__main__ Reading",
        7: "inheritance",
        8: "lock",
        11: "__main__ clean_row",
        12: "__main__ Reading",
    }
    return tasks, expected


def _run_preflight(preflight: Callable[[list], Any], tasks: list) -> Any:
    try:
        return preflight(tasks)
    except Exception as exc:
        fail(
            f"preflight raised {type(exc).__name__}: {exc}. It must report problems, not "
            "raise them: check_picklable(obj) returns a verdict instead of raising."
        )


def check_preflight(preflight: Callable[[list], Any]) -> None:
    """Exercise 1: ``preflight(tasks)`` maps the index of each task a spawn worker can't get.

    A task fails if it can't be pickled, or if it pickles but refers to a function or
    class defined in ``__main__`` (a notebook), which a spawn worker can't import.
    """
    require_function(preflight, "preflight")
    with _defined_in_main() as main:
        for empty in ([], [(square, (1,)), (sum, ([2],))]):
            found = _run_preflight(preflight, empty)
            expect(found is not None, "preflight returned None: return a dict {index: reason}.")
            expect(
                found == {},
                f"preflight({empty!r}) returned {found!r}: every task there can be sent, so "
                "the dict should be empty.",
            )
        tasks, expected = preflight_tasks(main)
        try:
            found = _run_preflight(preflight, tasks)
        finally:
            tasks[2][1][0].close()
    expect(
        isinstance(found, dict),
        f"preflight returned a {type(found).__name__}: return a dict {{index: reason}}, "
        "e.g. {1: 'PicklingError: ...'}.",
    )
    keys = {_index(k) for k in found}
    expect(
        None not in keys,
        "use the tasks' indexes (0, 1, 2, ...) as the keys: enumerate(tasks).",
    )
    reasons = {_index(k): reason for k, reason in found.items()}
    extra = sorted(keys - set(expected))
    expect(
        not extra,
        f"tasks {extra} can be sent to a spawn worker, but your dict lists them: leave out "
        "the tasks that pickle and refer to nothing defined in __main__.",
    )
    missing = sorted(set(expected) - keys)
    if missing:
        if set(missing) & {2, 5, 7, 8} and 1 not in missing:
            fail(
                f"tasks {missing} are missing: their function pickles, but an argument does "
                "not. Check the whole (function, args) pair: both travel to the worker."
            )
        if set(missing) & {6, 11, 12} and 4 not in missing:
            fail(
                f"tasks {missing} are missing: they pickle and their function isn't from "
                "__main__, but something inside them is: an argument holds an object (or a "
                "function) defined there, directly or deeper (in a list, in an object's "
                "attributes, in what a wrapper wraps). Look inside everything the task holds."
            )
        if set(missing) <= {4, 6, 11, 12}:
            fail(
                f"tasks {missing} are missing: they pickle, so check_picklable says ok, but "
                "a spawn worker would fail to rebuild them (section 1, the notebook class "
                "Point). Look at where every object in the task was defined, arguments "
                "(and what they contain) included."
            )
        fail(f"tasks {missing} can't reach a spawn worker, but your dict leaves them out.")
    for index, words in expected.items():
        reason = reasons[index]
        expect(
            isinstance(reason, str) and reason.strip(),
            f"the reason for task {index} should be a non-empty string (the error), "
            f"got {reason!r}.",
        )
        expect(
            any(word.lower() in reason.lower() for word in words.split()),
            f"the reason for task {index} ({reason!r}) doesn't say what failed: use the "
            "error text check_picklable gives you, or name what a spawn worker can't import.",
        )
    passed(
        f"{len(expected)} of {len(tasks)} tasks can't reach a spawn worker, each with its "
        "reason, including the four that pickle but need something from __main__."
    )


def _index(key: Any) -> int | None:
    """``key`` as a task index (an int, a NumPy integer...), or None if it is not one."""
    if isinstance(key, bool):
        return None
    try:
        return operator.index(key)
    except TypeError:
        return None


def _scenarios(method: str = "fork") -> list[tuple[str, list[int], int]]:
    """``(name, numbers, workers)`` for check_collect_squares, the failing one last.

    Under spawn, where each worker takes longer to start, only the big one (what differs
    there is whether the workers can import what they run, which any input shows).
    """
    every = [
        ("4 numbers (one twice), 1 worker", [3, 1, 3, 2], 1),
        ("10,000 numbers, 2 workers", list(range(10_000)), 2),
        ("no numbers, 3 workers", [], 3),
        ("1 number, 3 workers", [5], 3),
        ("a worker killed at number 1,234 of 3,000", list(range(3_000)), 2),
        # The bad record first, and the last number slow (in the second worker however
        # the numbers are split): when the first worker fails the other is still busy.
        ("a bad record (-1) first, another worker still busy", [-1, *range(1, 4_001), 0], 2),
    ]
    return every if method == "fork" else [every[1]]


def _collect_in_child(func: Any, conn: Any, trace: str) -> None:
    """Process target: run ``func`` on every scenario here; report each outcome on ``conn``.

    Sends ``("start", name)`` before each scenario and ``("done", name, outcome)`` after:
    ``outcome`` holds the returned value or the exception's text, the seconds it took,
    the workers that ran ``square_into`` and the processes still alive afterwards.
    """
    _own_group()
    # The failing worker's traceback goes nowhere, not to the learner's notebook: a fork
    # child of a Jupyter kernel writes through sys.stderr, a spawn child to descriptor 2.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open for the life of this process)
    os.environ["PITFALLS_TRACE"] = trace
    me = psutil.Process()
    for name, numbers, workers in _scenarios(multiprocessing.get_start_method()):
        conn.send(("start", name))
        open(trace, "w").close()
        os.environ["PITFALLS_KILL_AT"] = "1234" if "killed" in name else ""
        os.environ["PITFALLS_SLOW_AT"] = "0" if "busy" in name else ""
        outcome: dict[str, Any] = {}
        started = time.monotonic()
        try:
            outcome["value"] = func(list(numbers), workers)
        except BaseException as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        outcome["seconds"] = time.monotonic() - started
        if os.environ.get("PITFALLS_DEBUG"):
            print(name, outcome["seconds"], file=sys.stdout, flush=True)
        deadline = time.monotonic() + 1
        while True:
            alive = [c for c in me.children(recursive=True) if _running(c)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        outcome["leftovers"] = len(alive)
        for child in alive:
            child.kill()
        with open(trace) as f:
            lines = [line.split() for line in f if line.strip()]
        outcome["workers"] = {int(pid) for pid, _ in lines} - {os.getpid()}
        outcome["handled"] = sum(int(count) for _, count in lines)
        if isinstance(outcome.get("value"), list) and len(outcome["value"]) > 100:
            got = outcome["value"]
            outcome["value"] = ("summary", len(got), got == sorted(got), sum(got))
        conn.send(("done", name, outcome))
    conn.close()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _expected(numbers: list[int]) -> Any:
    squares = sorted(x * x for x in numbers)
    if len(squares) > 100:
        return ("summary", len(squares), True, sum(squares))
    return squares


def _learner_function(func: Any) -> LearnerFunction:
    """``LearnerFunction(func)``, also knowing the globals used inside its comprehensions.

    Up to Python 3.11 a comprehension is a code object of its own, so the names it uses
    (``square_into`` in ``[Process(target=square_into) ...]``) are not in the function's.
    """
    wrapped = LearnerFunction(func)
    names: set[str] = set()
    codes = [func.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    for name in names:
        value = func.__globals__.get(name)
        if isinstance(value, types.ModuleType):
            wrapped.modules[name] = value.__name__
        elif _importable(value):
            wrapped.imported[name] = (value.__module__, value.__qualname__)
    return wrapped


def check_collect_squares(
    collect_squares: Callable[[list[int], int], Any], timeout: float = 4
) -> None:
    """Exercise 2: the fixed ``collect_squares(numbers, workers)`` under fork and spawn.

    Runs it in a child process started with each method (fork first, where it exists):
    on several inputs and worker counts, and on one with a bad record that makes a
    worker fail. Every scenario must finish within ``timeout`` seconds under fork,
    :data:`SPAWN_FACTOR` times that under spawn (each worker starts a fresh interpreter,
    and on a loaded machine that can take seconds; a hang is caught either way).
    """
    require_function(collect_squares, "collect_squares")
    func = _learner_function(collect_squares)
    methods = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]
    scenarios = {name: (numbers, workers) for name, numbers, workers in _scenarios()}
    with tempfile.TemporaryDirectory() as folder:
        for method in methods:
            limit = timeout if method == "fork" else SPAWN_FACTOR * timeout
            context = multiprocessing.get_context(method)
            receiver, sender = context.Pipe(duplex=False)
            trace = os.path.join(folder, f"trace-{method}")
            child = context.Process(target=_collect_in_child, args=(func, sender, trace))
            child.start()
            sender.close()
            hung = "the first scenario"
            try:
                outcomes, hung, _ = _receive(
                    receiver,
                    limit,
                    lambda name, outcome, method=method, limit=limit: _judge(
                        name, *scenarios[name], outcome, method, limit
                    ),
                )
            finally:
                _stop_tree(child, at_once=hung is not None)
                receiver.close()
            if hung is not None:
                fail(
                    f"under {method}, with {hung}, collect_squares had not returned after "
                    f"{limit:g} s: it hangs. Which wait never ends, and what does the "
                    "process it waits for need before it can end?"
                )
    passed(
        f"every square arrives, a failing worker raises, nothing hangs or is left "
        f"behind, under {' and '.join(methods)}."
    )


def _receive(
    receiver: Any, timeout: float, judge: Callable[[str, dict], None] | None = None
) -> tuple[list[tuple[str, dict]], str | None, str | None]:
    """The outcomes the child reported; the scenario it hung in, or the one it died in.

    ``judge(name, outcome)`` is called on each outcome as it arrives: the first wrong one
    ends the check at once (its ``ExerciseFailed`` propagates), without waiting for the
    scenarios after it.
    """
    outcomes: list[tuple[str, dict]] = []
    current = None
    while True:
        if not receiver.poll(timeout if current else 30):
            return outcomes, current or "the first scenario", None
        try:
            message = receiver.recv()
        except EOFError:
            return outcomes, None, current
        if message[0] == "start":
            current = message[1]
        else:
            outcomes.append((message[1], message[2]))
            current = None
            if judge is not None:
                judge(message[1], message[2])


def _own_group() -> None:
    """In a check's child: lead a process group of its own, which its descendants join.

    So :func:`_stop_tree` can kill all of them at once, even those whose parent died
    and which no longer appear among the child's descendants.
    """
    if hasattr(os, "setsid"):
        os.setsid()


def _stop_tree(child: Any, at_once: bool) -> None:
    """Kill everything ``child`` started, and ``child`` too unless it ends by itself."""
    if not at_once:
        child.join(timeout=3)
    for _ in range(3):  # a process may vanish while the tree is walked: walk it again
        try:
            family = psutil.Process(child.pid).children(recursive=True)
            break
        except psutil.Error:
            family = []
    for proc in family:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if child.is_alive():
        child.kill()
    child.join()
    if hasattr(os, "killpg"):  # Linux and macOS: whatever is left of the child's group
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _judge(
    name: str, numbers: list[int], workers: int, outcome: dict, method: str, timeout: float
) -> None:
    where = f"under {method}, with {name}"
    failing = any(x < 0 for x in numbers) or "killed" in name
    if failing:
        expect(
            "error" in outcome,
            f"{where}, a worker failed (it raised, or was killed), "
            f"but collect_squares returned normally ({_show(outcome.get('value'))}): "
            "results are missing, so it must raise. How can the parent tell that a worker "
            "ended without sending everything?",
        )
    else:
        expect(
            "error" not in outcome,
            f"{where}, collect_squares raised {outcome.get('error')}."
            + _NAME_HINT * str(outcome.get("error", "")).startswith("NameError"),
        )
        got = outcome["value"]
        expect(
            got == _expected(numbers),
            f"{where}, collect_squares returned {_show(got)}, expected "
            f"{_show(_expected(numbers))}: results went missing. When do the items a worker "
            "put on the queue actually leave that process?",
        )
        if numbers:
            expect(
                outcome["workers"] and outcome["handled"] == len(numbers),
                f"{where}, the squares were not computed by square_into in worker "
                "processes: keep the workers, fix how their results are collected.",
            )
        expect(
            min(workers, len(numbers)) <= len(outcome["workers"]) <= workers,
            f"{where}, {len(outcome['workers'])} processes ran square_into: split the work "
            "among `workers` processes.",
        )
    expect(
        outcome["leftovers"] == 0,
        f"{where}, {outcome['leftovers']} process(es) were still running after "
        "collect_squares returned: join (or terminate) every worker before returning.",
    )
    expect(
        outcome["seconds"] < timeout,
        f"{where}, collect_squares took {outcome['seconds']:.1f} s.",
    )


_NAME_HINT = (
    " The check runs your function alone, as a spawn child would: a function or variable "
    "defined in another notebook cell isn't there. Import what you use inside the "
    "function, or use the helpers' functions."
)


def _show(value: Any) -> str:
    if isinstance(value, tuple) and value and value[0] == "summary":
        return f"{value[1]:,} squares" + ("" if value[2] else ", not sorted")
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _batch_scenarios(method: str = "fork") -> list[tuple[str, list[tuple[Any, tuple]], list]]:
    """``(name, tasks, expected)`` for check_run_batch; under spawn only the first.

    ``expected`` has, per task, ``("value", v)``, ``("error", "ValueError")`` (the task's
    own exception) or ``("killed",)`` (any exception will do).
    """
    every = [
        (
            "6 tasks, the second one's worker killed",
            [
                (square, (2,)),
                (kill_self, (0.0,)),
                (slow_square, (3, 0.2)),
                (checked_sqrt, (-1,)),
                (square, (5,)),
                (slow_square, (4, 0.1)),
            ],
            [
                ("value", 4),
                ("killed",),
                ("value", 9),
                ("error", "ValueError"),
                ("value", 25),
                ("value", 16),
            ],
        ),
        ("an empty batch", [], []),
        (
            "8 healthy tasks",
            [(slow_square, (x, 0.05)) for x in range(8)],
            [("value", x * x) for x in range(8)],
        ),
        (
            "5 tasks of one function, one worker killed at x=7",
            [(risky_square, (x,)) for x in (5, 7, 9, 2, 3)],
            [("value", 25), ("killed",), ("value", 81), ("value", 4), ("value", 9)],
        ),
        (
            "4 tasks, two workers killed",
            [(kill_self, (0.0,)), (square, (3,)), (kill_self, (0.05,)), (square, (6,))],
            [("killed",), ("value", 9), ("killed",), ("value", 36)],
        ),
    ]
    return every if method == "fork" else every[:1]


def _describe(item: Any) -> tuple:
    if isinstance(item, BaseException):
        return ("error", type(item).__name__, isinstance(item, ValueError))
    return ("value", item)


def _batch_in_child(func: Any, conn: Any) -> None:
    """Process target: run ``func`` on every batch scenario; report each outcome on ``conn``."""
    _own_group()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open for the life of this process)
    me = psutil.Process()
    for name, tasks, _ in _batch_scenarios(multiprocessing.get_start_method()):
        conn.send(("start", name))
        os.environ["PITFALLS_KILL_AT"] = "7" if "killed at x=7" in name else ""
        outcome: dict[str, Any] = {}
        started = time.monotonic()
        try:
            got = func(list(tasks))
        except BaseException as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        else:
            if isinstance(got, (list, tuple)):
                outcome["value"] = [_describe(item) for item in got]
            else:
                outcome["value"] = ("not a list", type(got).__name__)
        outcome["seconds"] = time.monotonic() - started
        deadline = time.monotonic() + 1
        while True:
            alive = [c for c in me.children(recursive=True) if _running(c)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        outcome["leftovers"] = len(alive)
        for child in alive:
            child.kill()
        conn.send(("done", name, outcome))
    conn.close()


def check_run_batch(run_batch: Callable[[list], Any], timeout: float = 3) -> None:
    """Exercise 3: the fixed ``run_batch(tasks)`` survives a worker killed mid-batch.

    Runs it in a child process started with fork (where it exists) and spawn, on batches
    where tasks' workers get SIGKILLed, a task raises, or nothing goes wrong. A batch must
    end within ``timeout`` seconds under fork, :data:`SPAWN_FACTOR` times that under spawn.
    """
    require_function(run_batch, "run_batch")
    if not hasattr(signal, "SIGKILL"):
        fail("this check kills workers with SIGKILL, which your system doesn't have.")
    func = _learner_function(run_batch)
    methods = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]
    for method in methods:
        expected = {name: want for name, _, want in _batch_scenarios(method)}
        limit = timeout if method == "fork" else SPAWN_FACTOR * timeout
        context = multiprocessing.get_context(method)
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_batch_in_child, args=(func, sender))
        child.start()
        sender.close()
        hung: str | None = "the first scenario"
        try:
            outcomes, hung, died = _receive(
                receiver,
                limit,
                lambda name, outcome, method=method, limit=limit, expected=expected: _judge_batch(
                    f"under {method}, with {name}", expected[name], outcome, limit
                ),
            )
        finally:
            _stop_tree(child, at_once=hung is not None)
            receiver.close()
        if died is not None:
            fail(
                f"under {method}, with {died}, the process that called run_batch was "
                "killed: the tasks must run in worker processes, not in the caller."
            )
        if hung is not None:
            fail(
                f"under {method}, with {hung}, run_batch had not returned after {limit:g} "
                "s: it hangs. What happens to a task whose worker is killed, and who waits "
                "for its result?"
            )
    passed(
        "killed workers, failing tasks and healthy ones each get the right entry; nothing "
        f"hangs or is left behind, under {' and '.join(methods)}."
    )


def _judge_batch(where: str, expected: list, outcome: dict, timeout: float) -> None:
    expect(
        "error" not in outcome,
        f"{where}, run_batch raised {outcome.get('error')}: return one entry per task "
        "instead (a result, or the exception that stopped it)."
        + _NAME_HINT
        * str(outcome.get("error", "")).startswith("NameError"),
    )
    got = outcome["value"]
    expect(
        isinstance(got, list),
        f"{where}, run_batch returned {got[1] if isinstance(got, tuple) else got}: return "
        "a list, one entry per task, in task order.",
    )
    expect(
        len(got) == len(expected),
        f"{where}, run_batch returned {len(got)} entries for {len(expected)} tasks.",
    )
    for i, (entry, want) in enumerate(zip(got, expected, strict=True)):
        if want[0] == "value":
            expect(
                entry == want,
                f"{where}, task {i} runs fine in a healthy worker, but its entry is "
                f"{_entry(entry)}, expected {want[1]!r}. A task that was only waiting when "
                "another task's worker died still deserves its result.",
            )
        elif want[0] == "error":
            expect(
                entry[0] == "error" and entry[2],
                f"{where}, task {i} raises ValueError, but its entry is {_entry(entry)}: "
                "put the task's own exception there.",
            )
        else:
            expect(
                entry[0] == "error",
                f"{where}, task {i}'s worker was killed, but its entry is {_entry(entry)}: "
                "put an exception there (one that says what happened).",
            )
    expect(
        outcome["leftovers"] == 0,
        f"{where}, {outcome['leftovers']} process(es) were still running after run_batch "
        "returned: stop or join every worker before returning.",
    )
    expect(outcome["seconds"] < timeout, f"{where}, run_batch took {outcome['seconds']:.1f} s.")


def _entry(entry: tuple) -> str:
    return f"the exception {entry[1]}" if entry[0] == "error" else repr(entry[1])
