"""Checks for chapter 12 (capstone)."""

from __future__ import annotations

import ast
import heapq
import multiprocessing
import numbers
import random
import shutil
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from helpers.checks import (
    LearnerFunction,
    call_with_timeout,
    expect,
    fail,
    passed,
    require_function,
)

# ---------------------------------------------------------------- exercise 1

# Small files that each test one rule of the statement: name -> bytes
EDGE_FILES = {
    "empty.py": b"",
    "no_functions.py": b"x = 1\n\n\nclass Plain:\n    size = 2\n",
    "async_longest.py": b"def short():\n    return 1\n\n\nasync def fetch():\n    a = 1\n"
    b"    b = 2\n    c = 3\n    return a + b + c\n",
    "method_longest.py": b"def top():\n    return 1\n\n\nclass Box:\n    def method(self):\n"
    b"        a = 1\n        b = 2\n        c = 3\n        return a + b + c\n",
    "nested.py": b"if True:\n\n    def hidden():\n        a = 1\n        b = 2\n        return a\n"
    b"\n\ndef small():\n    pass\n",
    "decorated.py": b"@one\n@two\n@three\n@four\ndef decorated():\n    return 1\n\n\n"
    b"def plain():\n    a = 1\n    b = 2\n    return a + b\n",
    "lambda_long.py": b"def f():\n    return 1\n\n\ng = (\n    lambda: (\n        1,\n        2,\n"
    b"        3,\n        4,\n    )\n)\n",
    "tie.py": b"def first():\n    return 1\n\n\ndef second():\n    return 2\n",
    "latin1.py": "# -*- coding: latin-1 -*-\ndef caf\u00e9():\n    return '\u00e9'\n".encode(
        "latin-1"
    ),
    "python2.py": b"print 'hello'\n",
    "bad_coding.py": b"# -*- coding: uft-8 -*-\nx = 1\n",
    "null_byte.py": b"x = 1\x00\n",
    "too_deep.py": b"x = " + b"-" * 200_000 + b"1\n",  # the parser gives up: MemoryError
}


STARTUP_SECONDS = 60  # for the check's two worker processes to start
WORKER_SECONDS = 8  # for the learner's worker on all the files (each takes milliseconds)


def _reference(path: str) -> dict[str, Any]:
    """The expected record; for the longest function, every name of that length."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {"path": path, "error": True}
    lengths: dict[int, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lengths.setdefault(node.end_lineno - node.lineno + 1, set()).add(node.name)
    if not lengths:
        return {"path": path, "names": {None}, "lines": 0}
    longest = max(lengths)
    return {"path": path, "names": lengths[longest], "lines": longest}


def _stdlib_sample() -> list[str]:
    """About 13 real files (every 140th), plus a few that really fail to parse."""
    from helpers.capstone import python_files

    files = python_files(sysconfig.get_paths()["stdlib"])
    chosen = [str(p) for p in files[::140]]
    failing = [str(p) for p in files if "tokenizedata" in p.parts and "bad" in p.name]
    return chosen + failing[:3]


def _judge(path: str, got: Any, want: dict[str, Any]) -> None:
    name = Path(path).name
    expect(
        isinstance(got, Mapping),
        f"for {name} your worker returned {type(got).__name__}: return a dict (a record)",
    )
    expect(
        got.get("path") == path,
        f'for {name} the record\'s "path" is {got.get("path")!r}: it should be str(path) '
        "(the check hands over some paths as str, some as pathlib.Path)",
    )
    if want.get("error"):
        error = got.get("error")
        expect(
            isinstance(error, str) and error.strip() != "",
            f"{name} can't be parsed: its record should have an 'error' text, got {dict(got)}",
        )
        return
    expect(
        "error" not in got,
        f"{name} parses fine, but your record says error: {got.get('error')!r}. Does your "
        "worker read the file the way Python does (as bytes, so its coding line counts)?",
    )
    lines = got.get("lines")
    expect(
        isinstance(lines, numbers.Integral) and not isinstance(lines, bool),
        f"for {name}, 'lines' should be an int, got {lines!r}",
    )
    expect(
        lines == want["lines"],
        f"for {name} your record says lines={lines}, name={got.get('name')!r}; the longest "
        f"function there has {want['lines']} lines (end_lineno - lineno + 1; every def and "
        "async def counts, nested and methods too, lambdas don't)",
    )
    expect(
        got.get("name") in want["names"],
        f"for {name} the longest function is "
        f"{' or '.join(sorted(map(repr, want['names'])))}, your record names {got.get('name')!r}",
    )


class _Raised:
    """What a learner's worker raised instead of returning a record."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def check_longest_function(longest_function: Any) -> None:
    """Run the learner's worker in spawned processes on real and edge-case files."""
    require_function(longest_function, "longest_function")
    try:
        worker = LearnerFunction(longest_function)
    except (TypeError, ValueError) as exc:
        fail(f"the check can't read your function's source: {exc}")
    scratch = Path(tempfile.mkdtemp(prefix="check-12-"))
    try:
        paths = []
        for name, data in EDGE_FILES.items():
            (scratch / name).write_bytes(data)
            paths.append(str(scratch / name))
        (scratch / "folder.py").mkdir()  # a path that can't be read as a file
        paths += [str(scratch / "folder.py"), str(scratch / "missing.py")]
        paths += _stdlib_sample()
        deep = str(scratch / "too_deep.py")  # judged last: a rarer failure than the others
        paths.remove(deep)
        paths.append(deep)
        wanted = {path: _reference(path) for path in paths}
        # every other file is handed over as a Path, the rest as str: both are paths
        given = {path: Path(path) if i % 2 else path for i, path in enumerate(paths)}

        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(2)
        try:
            try:  # the workers start (slowly on a busy machine) before the time limit counts
                pool.apply_async(int).get(timeout=STARTUP_SECONDS)
            except multiprocessing.TimeoutError:
                fail(f"the check's worker processes did not start in {STARTUP_SECONDS} s")
            pending = {path: pool.apply_async(worker, (given[path],)) for path in paths}
            deadline = time.monotonic() + WORKER_SECONDS
            got = {}
            for path, result in pending.items():
                try:
                    got[path] = result.get(timeout=max(0.1, deadline - time.monotonic()))
                except multiprocessing.TimeoutError:
                    fail(
                        f"your worker took more than {WORKER_SECONDS} s for {len(paths)} small "
                        f"files (still busy with {Path(path).name} or one before it): does it "
                        "finish on every file?"
                    )
                except Exception as exc:  # judged in the order of the files, below
                    got[path] = _Raised(exc)
        finally:
            pool.terminate()
            pool.join()
        for path in paths:
            if isinstance(got[path], _Raised):
                exc = got[path].exc
                fail(
                    f"in a spawned worker, your function raised {type(exc).__name__}: {exc} "
                    f"(on {Path(path).name}). A worker must return a record with the "
                    "error for any file that can't be read or parsed, and import what it "
                    "uses inside the cell"
                )
            _judge(path, got[path], wanted[path])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    real = len(paths) - len(EDGE_FILES) - 2
    passed(
        f"{len(paths)} files ({real} from the standard library) analysed in spawned "
        "workers, every record as in a serial run."
    )


# ---------------------------------------------------------------- exercise 2

PER_BYTE = 1 / 3e6  # seconds per byte of source
DISPATCH = 1e-4  # seconds to hand one chunk to a worker
MARGIN = 1.15


def simulate(order: list[str], chunksize: int, sizes: Mapping[str, int], workers: int) -> float:
    """When the last worker finishes, if a pool hands out chunks of ``order`` in turn,
    each to the first worker that is free."""
    free = [0.0] * workers
    for i in range(0, len(order), chunksize):
        cost = DISPATCH + PER_BYTE * sum(sizes[p] for p in order[i : i + chunksize])
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def best_possible(sizes: Mapping[str, int], workers: int) -> float:
    costs = [PER_BYTE * s for s in sizes.values()]
    return max(sum(costs) / workers, max(costs))


def _projects() -> list[tuple[str, dict[str, int], tuple[int, ...]]]:
    from helpers.capstone import python_files

    rng = random.Random(12)
    stdlib = {str(p): p.stat().st_size for p in python_files(sysconfig.get_paths()["stdlib"])}
    tiny = {f"/tiny/m{i:05d}.py": rng.randint(50, 150) for i in range(20_000)}
    huge = {f"/app/gen/huge{i}.py": 6_000_000 for i in range(3)}
    huge.update({f"/app/src/m{i:03d}.py": rng.randint(2_000, 20_000) for i in range(500)})
    # the same, with the huge files last by name, by path length and in the dict
    late = {f"/app/src/m{i:03d}.py": size for i, size in enumerate(list(huge.values())[3:])}
    late.update({f"/app/zz/h{i}.py": 6_000_000 for i in range(3)})
    few_tiny = {f"/tiny/m{i:04d}.py": rng.randint(50, 150) for i in range(8_000)}
    ordered = {f"/lib/a{i:04d}.py": 1_000 + 40 * i for i in range(1_500)}  # biggest last
    return [
        ("the standard library's files", stdlib, (1, 2, 3, 8)),
        ("20,000 tiny files", tiny, (2, 4)),
        ("8,000 tiny files", few_tiny, (2, 3)),
        ("3 huge files among 500 small ones", huge, (2, 3, 5)),
        ("3 huge files after 500 small ones", late, (2, 5)),
        ("1,500 files, growing in path order", ordered, (2, 6)),
        ("a single file", {"/only.py": 5_000}, (1, 4)),
    ]


def _call_plan(plan: Any, sizes: dict[str, int], workers: int, what: str) -> tuple[list, int]:
    given = dict(sizes)
    outcome = call_with_timeout(plan, (given, workers), timeout=5)
    if not outcome:
        fail(f"plan(sizes, {workers}) for {what} did not return within 5 s")
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"plan(sizes, {workers}) for {what} raised {type(exc).__name__}: {exc}")
    expect(given == sizes, "plan must not change the sizes it is given")
    value = outcome["value"]
    expect(
        isinstance(value, (tuple, list)) and len(value) == 2,
        f"plan should return (order, chunksize), got {type(value).__name__}: {value!r:.80}",
    )
    order, chunksize = value
    expect(
        isinstance(order, Iterable) and not isinstance(order, (str, bytes, Mapping)),
        f"order should be a list of paths, got {type(order).__name__}",
    )
    order = list(order)
    expect(
        Counter(order) == Counter(sizes.keys()),
        f"for {what}, order must hold every path of sizes exactly once "
        f"(got {len(order)} entries for {len(sizes)} files)",
    )
    expect(
        isinstance(chunksize, numbers.Integral) and not isinstance(chunksize, bool),
        f"chunksize should be an int, got {type(chunksize).__name__}",
    )
    expect(chunksize >= 1, f"chunksize must be at least 1, got {chunksize}")
    return order, int(chunksize)


def check_plan(plan: Any) -> None:
    """Simulate the pool with the learner's plan on several projects and worker counts."""
    require_function(plan, "plan")
    order, _ = _call_plan(plan, {}, 2, "no file at all")
    expect(order == [], "with no file, order should be empty")
    worst = 0.0
    for what, sizes, worker_counts in _projects():
        for workers in worker_counts:
            order, chunksize = _call_plan(plan, sizes, workers, what)
            took = simulate(order, chunksize, sizes, workers)
            best = best_possible(sizes, workers)
            worst = max(worst, took / best)
            expect(
                took <= MARGIN * best + DISPATCH,
                f"for {what} on {workers} workers your plan (chunksize {chunksize}) takes "
                f"{took:.2f} s in the simulation; the best possible is {best:.2f} s. "
                "Look at what the last worker still has to do when the others are done, "
                "and at what a chunk costs.",
            )
    passed(
        "every simulated run ends within "
        f"{(worst - 1) * 100:.0f} % of the best possible, from 1 to 8 workers."
    )
