"""Red team for chapter 12's exercises: answers meant to fool the checks, and unusual right ones.

Each case is the source of a learner's cell. It is run the way the notebook runs it: the
code is executed as ``__main__`` code (as a notebook cell is), from a file so that
``inspect.getsource`` finds it, and the check is called exactly as the check cell calls it.
Wrong answers must get ``ExerciseFailed``; right answers must pass.
"""

import itertools
import sys
import textwrap

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks import capstone as capstone_checks
from helpers.checks.capstone import check_longest_function, check_plan

_counter = itertools.count()


def load(source, name, tmp_path):
    """Run a cell's source as notebook code would be (module ``__main__``); return ``name``."""
    source = textwrap.dedent(source)
    path = tmp_path / f"cell_{next(_counter)}.py"
    path.write_text(source)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace[name]


# --- Exercise 1: longest_function -------------------------------------------------------

LF_RIGHT_BASE = """
import ast

def longest_function(path):
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except Exception as exc:
        return {"path": str(path), "error": f"{type(exc).__name__}: {exc}"}
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if best is None or n > best[1]:
                best = (node.name, n)
    if best is None:
        return {"path": str(path), "name": None, "lines": 0}
    return {"path": str(path), "name": best[0], "lines": best[1]}
"""


def _lf_variant(old, new, base=LF_RIGHT_BASE):
    assert old in base, old
    return base.replace(old, new)


LF_WRONG = {
    "skeleton": """
        def longest_function(path):
            pass
    """,
    "no-async-def": _lf_variant("(ast.FunctionDef, ast.AsyncFunctionDef)", "ast.FunctionDef"),
    "top-level-only": _lf_variant("ast.walk(tree)", "tree.body"),
    "counts-decorators": _lf_variant(
        "n = node.end_lineno - node.lineno + 1",
        "start = min([node.lineno] + [d.lineno for d in node.decorator_list])\n"
        "            n = node.end_lineno - start + 1",
    ),
    "off-by-one": _lf_variant(
        "n = node.end_lineno - node.lineno + 1", "n = node.end_lineno - node.lineno"
    ),
    "raises-on-bad-file": _lf_variant(
        "    except Exception as exc:\n", "    except ZeroDivisionError as exc:\n"
    ),
    "syntaxerror-only": _lf_variant(
        "    except Exception as exc:\n", "    except SyntaxError as exc:\n"
    ),
    "misses-parser-memoryerror": _lf_variant(
        "    except Exception as exc:\n", "    except (OSError, SyntaxError, ValueError) as exc:\n"
    ),
    "reads-text-utf8": _lf_variant(
        'with open(path, "rb") as f:', 'with open(path, encoding="utf-8") as f:'
    ),
    "first-function-not-longest": _lf_variant(
        "if best is None or n > best[1]:", "if best is None:"
    ),
    "counts-classes": _lf_variant(
        "(ast.FunctionDef, ast.AsyncFunctionDef)",
        "(ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)",
    ),
    "counts-lambdas": _lf_variant(
        "if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):\n"
        "            n = node.end_lineno - node.lineno + 1\n"
        "            if best is None or n > best[1]:\n"
        "                best = (node.name, n)",
        "if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):\n"
        "            n = node.end_lineno - node.lineno + 1\n"
        "            if best is None or n > best[1]:\n"
        "                best = (getattr(node, 'name', '<lambda>'), n)",
    ),
    "no-functions-name-empty": _lf_variant(
        '{"path": str(path), "name": None, "lines": 0}',
        '{"path": str(path), "name": "", "lines": 0}',
    ),
    "no-functions-lines-none": _lf_variant(
        '{"path": str(path), "name": None, "lines": 0}',
        '{"path": str(path), "name": None, "lines": None}',
    ),
    "error-empty-text": _lf_variant(
        'return {"path": str(path), "error": f"{type(exc).__name__}: {exc}"}',
        'return {"path": str(path), "error": ""}',
    ),
    "bad-file-as-no-functions": _lf_variant(
        'return {"path": str(path), "error": f"{type(exc).__name__}: {exc}"}',
        'return {"path": str(path), "name": None, "lines": 0}',
    ),
    "path-not-str": _lf_variant(
        '{"path": str(path), "name": best[0], "lines": best[1]}',
        '{"path": path, "name": best[0], "lines": best[1]}',
    ),
    "hangs-on-empty-file": _lf_variant(
        "    try:\n",
        "    if open(path, 'rb').read() == b'':\n        while True:\n            pass\n    try:\n",
    ),
    "regex-on-text": """
        import re

        def longest_function(path):
            try:
                text = open(path, encoding="utf-8", errors="replace").read()
            except OSError as exc:
                return {"path": str(path), "error": str(exc)}
            starts = [(i, m.group(2)) for i, line in enumerate(text.splitlines(), 1)
                      for m in [re.match(r"\\s*(async\\s+)?def\\s+(\\w+)", line)] if m]
            if not starts:
                return {"path": str(path), "name": None, "lines": 0}
            total = text.count("\\n") + 1
            best = max(
                ((name, (starts[k + 1][0] if k + 1 < len(starts) else total) - line)
                 for k, (line, name) in enumerate(starts)),
                key=lambda item: item[1],
            )
            return {"path": str(path), "name": best[0], "lines": best[1]}
    """,
}

LF_RIGHT = {
    "walk-first-tie": LF_RIGHT_BASE,
    "module-used-only-in-comprehension": """
        import ast
        from ast import walk
        from pathlib import Path


        def longest_function(path):
            try:  # 1024 is ast.PyCF_ONLY_AST: compile returns the tree
                tree = compile(Path(path).read_bytes(), str(path), "exec", flags=1024)
            except (SyntaxError, ValueError, OSError, MemoryError) as exc:
                return {"path": str(path), "error": str(exc) or type(exc).__name__}
            found = [
                (n.end_lineno - n.lineno + 1, n.name)
                for n in walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
            lines, name = max(found, default=(0, None))
            return {"path": str(path), "name": name, "lines": lines}
    """,
    "nodevisitor-class-and-helper-last-tie": """
        import ast
        from pathlib import Path


        def _length(node):
            return node.end_lineno - node.lineno + 1


        class Finder(ast.NodeVisitor):
            def __init__(self):
                self.best = (None, 0)

            def _function(self, node):
                if _length(node) >= self.best[1]:
                    self.best = (node.name, _length(node))
                self.generic_visit(node)

            visit_FunctionDef = visit_AsyncFunctionDef = _function


        def longest_function(path):
            try:
                tree = ast.parse(Path(path).read_bytes(), filename=str(path))
            except Exception as exc:
                return {"path": str(path), "error": repr(exc)}
            finder = Finder()
            finder.visit(tree)
            return {"path": str(path), "name": finder.best[0], "lines": finder.best[1]}
    """,
    "imports-inside-recursive-compile": """
        def longest_function(path):
            import ast
            import tokenize

            try:
                with tokenize.open(path) as f:  # honours the coding line
                    source = f.read()
                tree = compile(source, str(path), "exec", ast.PyCF_ONLY_AST)
            except (SyntaxError, ValueError, OSError, RecursionError, MemoryError) as exc:
                return {"path": str(path), "error": type(exc).__name__ + ": " + str(exc)}

            def visit(node):
                found = []
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.append((node.end_lineno - node.lineno + 1, node.name))
                for child in ast.iter_child_nodes(node):
                    found.extend(visit(child))
                return found

            try:
                found = visit(tree)
            except RecursionError as exc:
                return {"path": str(path), "error": "RecursionError: " + str(exc)}
            if not found:
                return dict(path=str(path), name=None, lines=0)
            lines, name = sorted(found)[-1]
            return dict(path=str(path), name=name, lines=lines)
    """,
}


@pytest.mark.parametrize("source", LF_WRONG.values(), ids=LF_WRONG.keys())
def test_longest_function_rejects(source, tmp_path, monkeypatch):
    # a hanging worker is stopped after the check's time limit: a shorter one keeps this fast
    monkeypatch.setattr(capstone_checks, "WORKER_SECONDS", 3)
    answer = load(source, "longest_function", tmp_path)
    with pytest.raises(ExerciseFailed):
        check_longest_function(answer)


@pytest.mark.parametrize("source", LF_RIGHT.values(), ids=LF_RIGHT.keys())
def test_longest_function_accepts(source, tmp_path):
    check_longest_function(load(source, "longest_function", tmp_path))


# --- Exercise 2: plan ------------------------------------------------------------------------

PLAN_WRONG = {
    "skeleton": """
        def plan(sizes, workers):
            order = sorted(sizes)
            chunksize = max(1, len(order) // workers)
            return order, chunksize
    """,
    "largest-first-one-chunk-per-worker": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, max(1, len(order) // workers)
    """,
    "largest-first-chunksize-1": """
        def plan(sizes, workers):
            return sorted(sizes, key=sizes.get, reverse=True), 1
    """,
    "smallest-first-chunksize-1": """
        def plan(sizes, workers):
            return sorted(sizes, key=sizes.get), 1
    """,
    "smallest-first-measured-chunksize": """
        import math


        def plan(sizes, workers):
            mean_cost = sum(sizes.values()) / max(1, len(sizes)) / 3e6
            by_dispatch = math.ceil(1e-2 / max(mean_cost, 1e-12))
            chunksize = max(1, min(by_dispatch, len(sizes) // (8 * workers)))
            return sorted(sizes, key=sizes.get), chunksize
    """,
    "largest-first-map-default-chunks": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, max(1, -(-len(order) // (4 * workers)))
    """,
    "hard-coded-chunksize-64": """
        def plan(sizes, workers):
            return sorted(sizes, key=sizes.get, reverse=True), 64
    """,
    "assumes-two-workers": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, max(1, len(order) // (4 * 2))
    """,
    "special-cases-20000-files": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, (200 if len(order) >= 20_000 else 1)
    """,
    "drops-empty-files": """
        def plan(sizes, workers):
            order = sorted((p for p in sizes if sizes[p] > 0), key=sizes.get, reverse=True)
            return order, max(1, len(order) // (100 * workers))
    """,
    "drops-smallest-file": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)[:-1]
            n = max(1, len(order))
            return order, max(1, round(100 * 1e-4 / (sum(sizes.values()) / 3e6 / n + 1e-12)))
    """,
    "duplicates-largest-file": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order[:1] + order, 1 if len(order) < 5000 else 100
    """,
    "chunksize-zero": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, len(order) // (100 * workers)
    """,
    "float-chunksize": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return order, max(1.0, len(order) / (100 * workers))
    """,
    "sizes-instead-of-paths": """
        def plan(sizes, workers):
            order = sorted(sizes.values(), reverse=True)
            return order, max(1, len(order) // (100 * workers))
    """,
    "sorted-by-path-length": """
        import math


        def plan(sizes, workers):
            mean_cost = sum(sizes.values()) / max(1, len(sizes)) / 3e6
            by_dispatch = math.ceil(1e-2 / max(mean_cost, 1e-12))
            chunksize = max(1, min(by_dispatch, len(sizes) // (8 * workers)))
            return sorted(sizes, key=lambda p: len(str(p)), reverse=True), chunksize
    """,
    "mutates-callers-sizes": """
        def plan(sizes, workers):
            order = []
            while sizes:
                largest = max(sizes, key=sizes.get)
                order.append(largest)
                sizes.pop(largest)
            return order, max(1, len(order) // (100 * workers))
    """,
    "returns-tuple-reversed": """
        def plan(sizes, workers):
            order = sorted(sizes, key=sizes.get, reverse=True)
            return max(1, len(order) // (100 * workers)), order
    """,
}

PLAN_SIMULATING = """
    def _finish(costs, chunksize, workers, dispatch=1e-4):
        free = [0.0] * workers
        for start in range(0, len(costs), chunksize):
            k = free.index(min(free))
            free[k] += dispatch + sum(costs[start : start + chunksize])
        return max(free, default=0.0)


    def plan(sizes, workers):
        order = sorted(sizes, key=lambda p: (-sizes[p], str(p)))
        costs = [sizes[p] / 3e6 for p in order]
        candidates = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
        best = min(sorted(candidates), key=lambda c: _finish(costs, c, workers))
        return order, best
"""

PLAN_RIGHT = {
    "simulates-candidate-chunksizes": PLAN_SIMULATING,
    "numpy-argsort-numpy-int": """
        import numpy as np


        def plan(sizes, workers):
            paths = list(sizes)
            nbytes = np.array([sizes[p] for p in paths], dtype=np.int64)
            order = [paths[i] for i in np.argsort(-nbytes, kind="stable")]
            if not paths:
                return order, np.int64(1)
            mean_cost = nbytes.mean() / 3e6
            by_dispatch = np.int64(np.ceil(100 * 1e-4 / max(mean_cost, 1e-12)))
            by_balance = np.int64(max(1, len(paths) // (8 * workers)))
            return order, max(np.int64(1), min(by_dispatch, by_balance))
    """,
    "heapq-tuple-order": """
        import heapq
        import math


        def plan(sizes, workers):
            order = tuple(heapq.nlargest(len(sizes), sizes, key=sizes.get))
            if not order:
                return order, 1
            mean_cost = sum(sizes.values()) / len(order) / 3e6
            by_dispatch = math.ceil(100 * 1e-4 / max(mean_cost, 1e-12))
            by_balance = max(1, len(order) // (8 * workers))
            return order, max(1, min(by_dispatch, by_balance))
    """,
}


@pytest.mark.parametrize("source", PLAN_WRONG.values(), ids=PLAN_WRONG.keys())
def test_plan_rejects(source, tmp_path):
    answer = load(source, "plan", tmp_path)
    with pytest.raises(ExerciseFailed):
        check_plan(answer)


@pytest.mark.parametrize("source", PLAN_RIGHT.values(), ids=PLAN_RIGHT.keys())
def test_plan_accepts(source, tmp_path):
    check_plan(load(source, "plan", tmp_path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
