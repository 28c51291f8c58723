"""Chapter 12: the capstone worker, results file, engines, time limit, and the script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import capstone
from helpers.capstone import (
    ResultStore,
    analyse_file,
    largest_first,
    python_files,
    run_engine,
    run_with_time_limit,
    summary_table,
    timed_analyse,
)
from helpers.capstone.__main__ import main

CLI = [sys.executable, "-m", "helpers.capstone"]
POSIX = hasattr(os, "killpg")

GOOD = '''"""A module."""
import os, json.decoder
from collections import abc
from . import sibling


class Box:
    """A box."""

    def method(self, x):
        if x and self:
            return [y for y in x if y]
        return None


async def run():
    def inner():
        pass

    while True:
        try:
            pass
        except ValueError:
            break
'''


@pytest.fixture
def project(tmp_path):
    """A small project: two good files, a broken one, a hidden folder and a non-Python file."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text(GOOD)
    (tmp_path / "pkg" / "empty.py").write_text("")
    (tmp_path / "broken.py").write_text("print 'python 2'\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "hidden.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "cached.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not python\n")
    return tmp_path


# ------------------------------------------------------------------ the worker


def test_analyse_file_measures_a_file(project):
    record = analyse_file(project / "pkg" / "good.py")
    assert record == {
        "path": str(project / "pkg" / "good.py"),
        "lines": GOOD.count("\n"),
        "functions": 3,  # method, run, inner
        "classes": 1,
        "depth": 2,  # Box.method, run.inner
        "complexity": 1 + 5,  # if, and, a comprehension, while, except
        "documented": round(1 / 4, 3),  # the class; not the functions
        "imports": ["collections", "json", "os"],  # relative imports left out
    }
    assert json.loads(json.dumps(record)) == record  # JSON can store it as it is


def test_analyse_file_empty_and_broken_files_give_records(project):
    assert analyse_file(project / "pkg" / "empty.py") == {
        "path": str(project / "pkg" / "empty.py"),
        "lines": 0,
        "functions": 0,
        "classes": 0,
        "depth": 0,
        "complexity": 1,
        "documented": None,
        "imports": [],
    }
    broken = analyse_file(project / "broken.py")
    assert set(broken) == {"path", "error"} and broken["error"].startswith("SyntaxError: ")
    assert "(line 1)" in broken["error"]
    missing = analyse_file(project / "missing.py")
    assert missing["error"].startswith("FileNotFoundError")
    assert analyse_file(project / "pkg")["error"].startswith(
        ("IsADirectoryError", "PermissionError")
    )
    (project / "bad_coding.py").write_bytes(b"# -*- coding: uft-8 -*-\nx = 1\n")
    assert "unknown encoding" in analyse_file(project / "bad_coding.py")["error"]
    (project / "latin.py").write_bytes("# coding: latin-1\ns = 'é'\n".encode("latin-1"))
    assert "error" not in analyse_file(project / "latin.py")  # its coding line is honoured


def test_analyse_file_last_line_without_newline(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2")
    assert analyse_file(tmp_path / "a.py")["lines"] == 2


def test_analyse_file_validates(tmp_path):
    with pytest.raises(TypeError, match="path"):
        analyse_file(3)
    with pytest.raises(TypeError, match="path"):
        timed_analyse(None)


def test_timed_analyse_returns_the_record_and_a_span(project):
    record, span = timed_analyse(project / "pkg" / "good.py")
    assert record == analyse_file(project / "pkg" / "good.py")
    assert span.label == "smaller" and span.pid == os.getpid() and span.duration >= 0


def test_python_files_skips_hidden_and_cache_folders(project):
    assert python_files(project) == sorted(
        [project / "broken.py", project / "pkg" / "empty.py", project / "pkg" / "good.py"]
    )
    assert python_files(project / "broken.py") == [project / "broken.py"]
    with pytest.raises(FileNotFoundError, match="missing"):
        python_files(project / "missing")
    with pytest.raises(TypeError, match="root"):
        python_files(1)


@pytest.mark.skipif(not POSIX or os.geteuid() == 0, reason="root reads every folder")
def test_python_files_reports_an_unreadable_folder(project):
    locked = project / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(PermissionError):
            python_files(project)
    finally:
        locked.chmod(0o755)


def test_largest_first(project):
    paths = python_files(project)
    assert largest_first(paths)[0] == project / "pkg" / "good.py"
    assert largest_first(paths)[-1] == project / "pkg" / "empty.py"
    with pytest.raises(TypeError, match="paths"):
        largest_first([1])


# ---------------------------------------------------------------- the results file


def test_result_store_appends_loads_and_survives_a_cut_off_line(tmp_path):
    path = tmp_path / "sub" / "results.jsonl"
    assert ResultStore(path).load() == {}
    with ResultStore(path) as store:
        store.append({"path": "a", "lines": 1})
        store.append({"path": "b", "error": "SyntaxError: x"})
    with path.open("a") as f:
        f.write('{"path": "c", "li')  # a writer killed mid-line
    assert ResultStore(path).load() == {
        "a": {"path": "a", "lines": 1},
        "b": {"path": "b", "error": "SyntaxError: x"},
    }
    with ResultStore(path) as store:
        store.append({"path": "c", "lines": 3})
    assert ResultStore(path).load()["c"] == {"path": "c", "lines": 3}
    assert len(path.read_text().splitlines()) == 4  # the broken line stays, on its own


def test_result_store_validates(tmp_path):
    with pytest.raises(TypeError, match="path"):
        ResultStore(None)
    with pytest.raises(TypeError, match="record"):
        ResultStore(tmp_path / "r.jsonl").append({"lines": 1})
    (tmp_path / "odd.jsonl").write_text('[1, 2]\n{"no path": 1}\n{"path": "ok"}\n')
    assert ResultStore(tmp_path / "odd.jsonl").load() == {"ok": {"path": "ok"}}


# ---------------------------------------------------------------- engines and time limit


@pytest.mark.parametrize("engine", ["pool", "futures"])
def test_run_engine_gives_the_serial_records(project, engine):
    paths = python_files(project)
    expected = {str(p): analyse_file(p) for p in paths}
    assert {r["path"]: r for r in run_engine(paths, engine, 2)} == expected
    assert list(run_engine([], engine, 2)) == []


def test_run_engine_stopped_early_leaves_no_workers(project):
    results = run_engine(python_files(project) * 20, "pool", 2)
    next(results)
    results.close()
    bookkeepers = ("resource_tracker", "forkserver")  # multiprocessing's own, started once
    children = []
    for child in psutil.Process().children():
        try:
            if not any(b in " ".join(child.cmdline()) for b in bookkeepers):
                children.append(child)
        except psutil.NoSuchProcess:
            pass
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in children)


def test_run_engine_validates(project):
    with pytest.raises(ValueError, match="engine"):
        list(run_engine([], "threads"))
    with pytest.raises(TypeError, match="paths"):
        list(run_engine("a.py"))
    with pytest.raises(ValueError, match="workers"):
        list(run_engine([], "pool", 0))
    with pytest.raises(TypeError, match="workers"):
        list(run_engine([], "pool", 2.0))
    with pytest.raises(ValueError, match="chunksize"):
        list(run_engine([], "pool", 2, 0))


def test_run_with_time_limit_stops_a_stuck_file_and_goes_on(project):
    stuck = project / "stuck.py"
    stuck.write_text("x = 1\n")
    paths = python_files(project)  # stuck.py among them
    start = time.monotonic()
    got = {r["path"]: r for r in run_with_time_limit(paths, 2, 0.5, stall_on="stuck.py")}
    assert time.monotonic() - start < 10
    assert got.pop(str(stuck)) == {
        "path": str(stuck),
        "error": "TimeoutError: still running after 0.5 s",
    }
    assert got == {str(p): analyse_file(p) for p in paths if p != stuck}
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_run_with_time_limit_validates():
    with pytest.raises(ValueError, match="limit"):
        list(run_with_time_limit([], 2, 0))
    with pytest.raises(TypeError, match="limit"):
        list(run_with_time_limit([], 2, "1"))
    with pytest.raises(ValueError, match="workers"):
        list(run_with_time_limit([], 0, 1))


def test_summary_table(project):
    records = [analyse_file(p) for p in python_files(project)]
    table = summary_table(records)
    assert "files analysed          2" in table and "files failed            1" in table
    assert "broken.py: SyntaxError" in table and "most imported: collections (1)" in table
    assert summary_table([]).startswith("files analysed          0")
    with pytest.raises(TypeError, match="top"):
        summary_table([], top="5")


# ---------------------------------------------------------------- the script


def run_cli(*args, timeout=120):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: path"),
        (("--workers", "0", "."), "argument --workers: must be at least 1, got 0"),
        (("--workers", "two", "."), "argument --workers: invalid positive_int value: 'two'"),
        (("--engine", "ray", "."), "argument --engine: invalid choice: 'ray'"),
        (("--time-limit", "-1", "."), "argument --time-limit: must be more than 0 seconds"),
        (("--time-limit", "1", "--engine", "dask", "."), "--time-limit works with --engine pool"),
        (("--frobnicate", "."), "unrecognized arguments: --frobnicate"),
    ],
)
def test_script_argument_errors_exit_2_with_a_message(args, message):
    run = run_cli(*args, timeout=60)
    assert run.returncode == 2
    assert message in run.stderr and "usage:" in run.stderr
    assert "Traceback" not in run.stderr


def test_script_missing_path_is_reported_not_a_traceback(tmp_path):
    run = run_cli(tmp_path / "nowhere")
    assert run.returncode == 2
    assert (
        run.stderr.strip() == f"error: cannot read {tmp_path / 'nowhere'}: no such file or folder"
    )


@pytest.mark.skipif(not POSIX or os.geteuid() == 0, reason="root reads every folder")
def test_script_unreadable_folder_is_reported(project):
    locked = project / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        run = run_cli(project)
    finally:
        locked.chmod(0o755)
    assert run.returncode == 2 and "Permission denied" in run.stderr
    assert "Traceback" not in run.stderr


def test_script_unreadable_file_is_a_failed_record(project):
    (project / "dangling.py").symlink_to(project / "gone.py")  # can't be read
    run = run_cli(project, "--quiet")
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert "failed: " in run.stderr and "dangling.py: FileNotFoundError" in run.stderr
    assert "files failed            2" in run.stdout


def test_script_folder_without_python_files(tmp_path):
    (tmp_path / "readme.txt").write_text("hello\n")
    run = run_cli(tmp_path)
    assert run.returncode == 0
    assert run.stdout.splitlines() == [f"0 Python files under {tmp_path}", "nothing to analyse"]


def test_script_analyses_and_summarises(project):
    run = run_cli(project, "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"3 Python files under {project}\n")
    assert "files analysed          2" in run.stdout
    assert f"failed: {project / 'broken.py'}: SyntaxError" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("engine", ["futures", "joblib"])
def test_script_engines_and_resume_file(project, tmp_path, engine):
    results = tmp_path / "results.jsonl"
    run = run_cli(project, "--engine", engine, "--resume", results, "--quiet")
    assert run.returncode == 0, run.stderr
    assert ResultStore(results).load() == {str(p): analyse_file(p) for p in python_files(project)}
    again = run_cli(project, "--engine", engine, "--resume", results)
    assert "3 done in an earlier run" in again.stdout
    assert len(results.read_text().splitlines()) == 3  # nothing analysed twice


def test_script_time_limit(project):
    run = run_cli(project, "--time-limit", "5", "--workers", "1")
    assert run.returncode == 0 and "files analysed          2" in run.stdout


def test_script_resume_file_that_cannot_be_read(project, tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    assert main([str(project), "--resume", str(tmp_path / "dir.jsonl"), "--quiet"]) == 2


@pytest.mark.skipif(not POSIX, reason="Ctrl-C reaches a process group on POSIX")
@pytest.mark.parametrize("engine", ["pool", "futures", "joblib", "dask"])
def test_script_resumes_after_sigint(tmp_path, engine):
    import sysconfig

    folder = Path(sysconfig.get_paths()["stdlib"]) / "idlelib"
    expected = {str(p): analyse_file(p) for p in python_files(folder)}
    results = tmp_path / "results.jsonl"
    proc = subprocess.Popen(
        [*CLI, str(folder), "--workers", "1", "--engine", engine, "--resume", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 10:
                break
            time.sleep(0.01)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert alive == []
    stopped = ResultStore(results).load()
    assert 10 <= len(stopped) < len(expected)
    assert f"interrupted: {len(stopped)} of {len(expected)} files done" in out

    resumed = run_cli(folder, "--resume", results)
    assert resumed.returncode == 0
    assert f"{len(stopped)} done in an earlier run" in resumed.stdout
    lines = results.read_text().splitlines()
    assert len(lines) == len(expected)  # every file once
    assert ResultStore(results).load() == expected


def test_capstone_imports_without_linux_only_calls():
    """The module must load on macOS and Windows: nothing Linux-only at import time."""
    source = Path(capstone.__file__).read_text()
    for name in ("sched_getaffinity", "/proc/", "/dev/shm", "SIGKILL", "killpg"):
        assert name not in source


# ---------------------------------------------------------------- the exercise checks


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    """The exercises' solution code, imported from real files (the checks read the source
    of the function back with inspect.getsource)."""
    import importlib.util

    import nbformat

    from helpers.exercises import exercises

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "12_capstone.ipynb", 4)
    folder = tmp_path_factory.mktemp("solutions")
    found = {}
    for name, exercise in zip(("longest_function", "plan"), exercises(nb), strict=True):
        module_file = folder / f"solution_{name}.py"
        module_file.write_text(exercise.solution_code)
        spec = importlib.util.spec_from_file_location(module_file.stem, module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found[name] = getattr(module, name)
    return found


def plan_skeleton(sizes, workers):
    order = sorted(sizes)
    chunksize = max(1, len(order) // workers)
    return order, chunksize


def plan_largest_first_chunk_1(sizes, workers):
    return sorted(sizes, key=sizes.get, reverse=True), 1


def plan_largest_first_big_chunks(sizes, workers):
    return sorted(sizes, key=sizes.get, reverse=True), max(1, len(sizes) // (20 * workers))


def plan_drops_a_file(sizes, workers):
    order = sorted(sizes, key=sizes.get, reverse=True)
    return order[1:], 1


def plan_float_chunksize(sizes, workers):
    return sorted(sizes, key=sizes.get, reverse=True), 1.0


def plan_changes_sizes(sizes, workers):
    order = sorted(sizes, key=sizes.get, reverse=True)
    sizes.clear()
    return order, 1


def plan_numpy_and_tuple(sizes, workers):
    import numpy as np

    order = sorted(sizes, key=sizes.get, reverse=True)
    mean_cost = np.mean(list(sizes.values()) or [1]) / 3e6
    by_dispatch = np.ceil(100 * 1e-4 / mean_cost)  # a chunk worth 100 dispatches
    by_balance = max(1, len(order) // (8 * workers))  # 8 chunks per worker at least
    return tuple(order), np.int64(max(1, min(by_dispatch, by_balance)))


def test_check_plan_accepts_the_solution_and_other_shapes(capsys, solutions):
    from helpers.checks.capstone import check_plan

    check_plan(solutions["plan"])
    check_plan(plan_numpy_and_tuple)
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize(
    ("plan", "hint"),
    [
        (plan_skeleton, "the best possible is"),
        (plan_largest_first_chunk_1, "20,000 tiny files"),
        (plan_largest_first_big_chunks, "3 huge files"),
        (plan_drops_a_file, "exactly once"),
        (plan_float_chunksize, "chunksize should be an int"),
        (plan_changes_sizes, "must not change the sizes"),
    ],
)
def test_check_plan_rejects_wrong_answers(plan, hint):
    from helpers.checks import ExerciseFailed
    from helpers.checks.capstone import check_plan

    with pytest.raises(ExerciseFailed, match=hint):
        check_plan(plan)


def longest_skeleton(path):
    pass


def longest_raises_on_bad_files(path):
    import ast

    tree = ast.parse(open(path, "rb").read())
    best = max(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
        key=lambda n: n.end_lineno - n.lineno,
        default=None,
    )
    if best is None:
        return {"path": str(path), "name": None, "lines": 0}
    return {"path": str(path), "name": best.name, "lines": best.end_lineno - best.lineno + 1}


def longest_top_level_only(path):
    import ast

    try:
        tree = ast.parse(open(path, "rb").read())
    except (OSError, SyntaxError, ValueError) as exc:
        return {"path": str(path), "error": str(exc)}
    best = (None, 0)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            best = max(best, (node.name, node.end_lineno - node.lineno + 1), key=lambda b: b[1])
    return {"path": str(path), "name": best[0], "lines": best[1]}


def longest_reads_text(path):
    import ast

    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except (OSError, SyntaxError, ValueError) as exc:
        return {"path": str(path), "error": str(exc)}
    best = (None, 0)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            best = max(best, (node.name, node.end_lineno - node.lineno + 1), key=lambda b: b[1])
    return {"path": str(path), "name": best[0], "lines": best[1]}


def longest_counts_lambdas(path):
    import ast

    try:
        tree = ast.parse(open(path, "rb").read())
    except (OSError, SyntaxError, ValueError) as exc:
        return {"path": str(path), "error": str(exc)}
    best = (None, 0)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            name = getattr(node, "name", "<lambda>")
            best = max(best, (name, node.end_lineno - node.lineno + 1), key=lambda b: b[1])
    return {"path": str(path), "name": best[0], "lines": best[1]}


def test_check_longest_function_accepts_the_solution(capsys, solutions):
    from helpers.checks.capstone import check_longest_function

    check_longest_function(solutions["longest_function"])
    assert "Correct:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (longest_skeleton, "returned NoneType"),
        (longest_raises_on_bad_files, "your function raised"),
        (longest_top_level_only, "nested and methods too"),
        (longest_reads_text, "as bytes, so its coding line counts"),
        (longest_counts_lambdas, "lambdas don't"),
    ],
)
def test_check_longest_function_rejects_wrong_answers(answer, hint):
    from helpers.checks import ExerciseFailed
    from helpers.checks.capstone import check_longest_function

    with pytest.raises(ExerciseFailed, match=hint):
        check_longest_function(answer)


def test_analyse_file_keeps_the_files_own_warnings_quiet(tmp_path):
    import warnings

    (tmp_path / "escapes.py").write_text('pattern = "\\d+"\n')  # an invalid escape sequence
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would raise here
        assert analyse_file(tmp_path / "escapes.py")["lines"] == 1
