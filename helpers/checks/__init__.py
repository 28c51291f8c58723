"""Exercise checks: each chapter has a module here (``helpers.checks.processes``, ...).

A check prints a short verdict when the learner's answer is right, and raises
:class:`ExerciseFailed` with a specific hint when it is not. In JupyterLab the failure
shows as one line with the hint, not a long traceback.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import queue
import sys
import textwrap
import threading
import time
import types
from typing import Any, NoReturn

__all__ = [
    "ExerciseFailed",
    "passed",
    "fail",
    "expect",
    "require_function",
    "stop_processes",
    "collect",
    "call_with_timeout",
    "LearnerFunction",
]


class ExerciseFailed(AssertionError):
    """An exercise answer is not right yet; the message says what to look at."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the full traceback.
        return [f"Not yet: {self}"]


def passed(message: str) -> None:
    """Print the verdict for a correct answer."""
    print(f"Correct: {message}")


def fail(hint: str) -> NoReturn:
    """Stop the check with a hint for the learner."""
    raise ExerciseFailed(hint)


def expect(condition: bool, hint: str) -> None:
    """Fail with ``hint`` unless ``condition`` holds."""
    if not condition:
        fail(hint)


def require_function(func: Any, name: str = "func") -> None:
    """TypeError unless ``func`` is a function defined with ``def`` (what checks accept)."""
    if not isinstance(func, types.FunctionType):
        raise TypeError(f"{name} must be a function defined with def, got {type(func).__name__}")


def stop_processes(procs: list[Any], timeout: float) -> list[Any]:
    """Join processes within ``timeout`` seconds in all; terminate and join any still alive.

    Returns the ones that had to be terminated, so a check can say the learner's code hung.
    """
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [p for p in procs if p.is_alive()]
    for p in stuck:
        p.terminate()
        p.join()
    # When the learner's code joins or polls the same process from another thread, that
    # thread may reap it while our join() sees no child left and returns with the exit code
    # not yet recorded: give that thread a moment to record it, so the process is not still
    # listed as running.
    settle = time.monotonic() + 2.0
    while any(p.pid and p.exitcode is None for p in procs) and time.monotonic() < settle:
        time.sleep(0.01)
    return stuck


def collect(q: Any, n: int, timeout: float) -> list[Any]:
    """Get up to ``n`` items from queue ``q``, stopping at the first wait over ``timeout`` s.

    A check uses it to gather what the learner's processes delivered without hanging on
    what they didn't.
    """
    got: list[Any] = []
    try:
        for _ in range(n):
            got.append(q.get(timeout=timeout))
    except queue.Empty:
        pass
    return got


def _importable(value: Any) -> bool:
    """True for a function or class defined in a real module (not ``__main__``)."""
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return False
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", "")
    return bool(module) and module not in ("__main__", "builtins") and "<" not in qualname


def _names_used(value: Any, source: str) -> set[str]:
    """Global names a function or class may use: its code's names, nested code included."""
    names: set[str] = set()
    codes = []
    if isinstance(value, types.FunctionType):
        codes.append(value.__code__)
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    try:  # the source also names a class's bases, decorators and class attributes
        tree = ast.parse(source)
    except SyntaxError:
        return names
    names.update(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))
    return names


def _defined_here(value: Any, func: Any, name: str) -> bool:
    """True for a function or class the notebook defined next to ``func``."""
    return (
        isinstance(value, (type, types.FunctionType))
        and getattr(value, "__module__", None) == func.__module__
        and getattr(value, "__name__", None) == name
        and "<" not in getattr(value, "__qualname__", "<")
    )


def _source_of(value: Any) -> str | None:
    """The source of a notebook function or class, or None if it can't be found."""
    try:
        return textwrap.dedent(inspect.getsource(value))
    except (OSError, TypeError):
        pass
    if not isinstance(value, type):
        return None
    # A class defined in a notebook cell: find its statement in the cell of one of its methods
    for member in vars(value).values():
        member = getattr(member, "__func__", member)
        code = getattr(member, "__code__", None)
        if code is None:
            continue
        lines = linecache.getlines(code.co_filename)
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ClassDef)
                and node.name == value.__name__
                and node.lineno <= code.co_firstlineno <= (node.end_lineno or 0)
            ):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                return textwrap.dedent("".join(lines[start - 1 : node.end_lineno]))
    return None


def call_with_timeout(func: Any, args: tuple, timeout: float) -> dict[str, Any]:
    """Run ``func(*args)`` in a daemon thread for at most ``timeout`` seconds.

    Returns ``{"value": ...}`` or ``{"error": exception}``, or ``{}`` if it had not returned
    by then. The result is a snapshot: a call that finishes later (for example once the
    check stops the processes it was waiting for) does not change it.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc

    worker = threading.Thread(target=call, name="learner-answer", daemon=True)
    worker.start()
    worker.join(timeout)
    return dict(outcome)


class LearnerFunction:
    """A function written in a notebook cell, made runnable in a spawned child.

    A notebook function cannot be pickled to a spawn or forkserver child (the child
    cannot import ``__main__`` of a kernel). This wrapper carries the function's source
    and re-creates it in the child, so a check can run the learner's worker in a real
    process. Modules the function uses as globals (``time``, ``np``, ...) are imported
    again in the child, and so are functions and classes it uses that were imported from a
    module (``wait``, ``SharedMemory``, ...), wherever the function uses them (in its own
    code, or in a comprehension, lambda or nested function inside it). Functions and classes
    defined in the notebook itself (a helper in the same cell) travel as source too; other
    globals are not available.
    """

    def __init__(self, func: Any):
        if not isinstance(func, types.FunctionType):
            raise TypeError(f"func must be a function defined with def, got {type(func).__name__}")
        if func.__name__ == "<lambda>":
            raise TypeError("func must be a function defined with def, not a lambda")
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError) as exc:
            raise ValueError(f"cannot read the source of {func.__name__}: {exc}") from None
        self.name = func.__name__
        self.modules: dict[str, str] = {}
        self.imported: dict[str, tuple[str, str]] = {}
        helpers: list[str] = []  # sources of the notebook's own functions and classes it uses
        seen = {func.__name__}
        todo = [(func, textwrap.dedent(source))]
        all_names: set[str] = set()
        while todo:
            value, code = todo.pop()
            names = _names_used(value, code)
            all_names |= names
            for name in sorted(names):
                if name in seen or name not in func.__globals__:
                    continue
                seen.add(name)
                used = func.__globals__[name]
                if isinstance(used, types.ModuleType):
                    self.modules[name] = used.__name__
                elif _importable(used):
                    self.imported[name] = (used.__module__, used.__qualname__)
                elif _defined_here(used, func, name):
                    helper = _source_of(used)
                    if helper is not None:
                        helpers.append(helper)
                        todo.append((used, helper))
        self.source = textwrap.dedent(source)
        # `import urllib.parse` binds `urllib`; a fresh child must import `urllib.parse` too.
        self.submodules = sorted(
            loaded
            for loaded in list(sys.modules)
            for module in set(self.modules.values())
            if loaded.startswith(module + ".") and set(loaded.split(".")[1:]) <= all_names
        )
        self.helpers = helpers[::-1]  # a class's bases must exist before it: last found first
        self._func: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "modules": self.modules,
            "imported": self.imported,
            "submodules": self.submodules,
            "helpers": self.helpers,
            "_func": None,
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is None:
            import importlib

            namespace: dict[str, Any] = {"__name__": "__learner__"}
            for submodule in getattr(self, "submodules", []):
                importlib.import_module(submodule)
            for alias, module in self.modules.items():
                namespace[alias] = importlib.import_module(module)
            for alias, (module, qualname) in getattr(self, "imported", {}).items():
                value: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    value = getattr(value, part)
                namespace[alias] = value
            for helper in getattr(self, "helpers", []):
                try:  # a name the function merely shares with a notebook helper may not run
                    exec(compile(helper, f"<exercise {self.name}>", "exec"), namespace)
                except Exception:
                    pass
            exec(compile(self.source, f"<exercise {self.name}>", "exec"), namespace)
            self._func = namespace[self.name]
        return self._func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"LearnerFunction({self.name})"
