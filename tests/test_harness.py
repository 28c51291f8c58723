"""The notebook harness (conftest.py) really selects start methods and really catches leftovers."""

import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def write_notebook(folder, name, *sources, tags=None):
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}")])
    for source in sources:
        cell = new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, folder / f"{name}.ipynb")


def run_harness(folder, *methods):
    shutil.copy(ROOT / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax"]
    args += ["--nbval-current-env", "--nbval-cell-timeout=30", "-q", "-rA"]
    for method in methods:
        args += ["--start-method", method]
    result = subprocess.run(
        args, cwd=folder, capture_output=True, text=True, timeout=240, check=False
    )
    return result.returncode, result.stdout + result.stderr


def test_each_notebook_runs_once_per_start_method(tmp_path):
    write_notebook(
        tmp_path,
        "method",
        "import multiprocessing, os\n"
        "assert multiprocessing.get_start_method() == os.environ['COURSE_START_METHOD']\n"
        "p = multiprocessing.Process(target=os.getpid)\np.start()\np.join()\n"
        "assert p.exitcode == 0",
    )
    methods = [m for m in ("spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]
    code, out = run_harness(tmp_path, *methods)
    assert code == 0, out
    for method in methods:
        assert f"method.ipynb::{method}::Cell 0" in out


@pytest.mark.parametrize(
    ("sources", "tags", "message"),
    [
        (
            [
                "import multiprocessing, time\n"
                "p = multiprocessing.Process(target=time.sleep, args=(20,))\np.start()"
            ],
            None,
            "child processes still running after the last cell",
        ),
        (["import warnings\nwarnings.warn('stray')"], None, "cell wrote to stderr"),
        (
            [
                "import multiprocessing, os, time\n"
                "p = multiprocessing.Process(target=os.write, args=(2, b'child oops\\n'))\n"
                "p.start()\np.join()\ntime.sleep(0.5)"
            ],
            None,
            "if the error is the lesson:\nchild oops",  # the child's output, caught in the cell
        ),
        (["import sys\nprint('oops', file=sys.stderr)\n1 / 0"], ["raises-exception"], None),
        (
            [
                "from multiprocessing import shared_memory\n"
                "shm = shared_memory.SharedMemory(create=True, size=64)\nshm.close()"
            ],
            None,
            "shared memory left in /dev/shm",
        ),
    ],
    ids=[
        "unjoined-process",
        "stderr-warning",
        "child-stderr",
        "tagged-error-is-fine",
        "shm-not-unlinked",
    ],
)
def test_leftovers_and_stray_output_fail_the_notebook(tmp_path, sources, tags, message):
    if message and "shm" in message and not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm on this platform")
    write_notebook(tmp_path, "leaky", *sources, tags=tags)
    code, out = run_harness(tmp_path, "spawn")
    if message is None:
        assert code == 0, out
    else:
        assert code != 0, out
        assert message in out, out


def write_exercise(folder, skeleton, check, solution):
    """A notebook with one exercise laid out as helpers.exercises describes, then one more cell
    that sees the learner's state."""
    nb = new_notebook(cells=[new_markdown_cell("# exercise")])
    cells = [
        new_code_cell(skeleton, metadata={"tags": ["exercise"]}),
        new_code_cell(check, metadata={"tags": ["check", "raises-exception"]}),
        new_markdown_cell(
            f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>",
            metadata={"tags": ["solution"]},
        ),
        new_code_cell("assert answer() is None  # the learner's skeleton is back"),
    ]
    nb.cells += cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, folder / "exercise.ipynb")


CHECK = (
    "from helpers.checks import expect, passed\n"
    "expect(answer() == 42, 'return 42')\n"
    "passed('42 it is')"
)


@pytest.mark.parametrize(
    ("skeleton", "check", "solution", "message"),
    [
        ("def answer():\n    return None", CHECK, "def answer():\n    return 42", None),
        (
            "def answer():\n    return None",
            "print('Correct: anything goes')",
            "def answer():\n    return 42",
            "the check accepted the untouched exercise skeleton",
        ),
        (
            "def answer():\n    return None",
            "answer() + 1",
            "def answer():\n    return 42",
            "should reject the untouched skeleton with ExerciseFailed, but raised TypeError",
        ),
        (
            "def answer():\n    return None",
            CHECK,
            "def answer():\n    return 41",
            "check accepts the solution",
        ),
    ],
    ids=["good", "check-accepts-skeleton", "check-crashes", "solution-rejected"],
)
def test_exercises_are_checked_both_ways(tmp_path, skeleton, check, solution, message):
    write_exercise(tmp_path, skeleton, check, solution)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    code, out = run_harness(tmp_path, method)
    if message is None:
        assert code == 0, out
        for role in ("solution", "check accepts the solution", "exercise restored"):
            assert f"PASSED exercise.ipynb::{method}::Cell 1 · {role}" in out, out
    else:
        assert code != 0, out
        assert message in out, out
