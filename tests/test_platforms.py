"""The Pythons and platforms the course is for.

- One list of Python versions, pyproject.toml's ``[tool.course.pythons]``: the classifiers,
  README's "Which Pythons" table, environment.yml's pin, .ci/test-matrix and the GitHub
  Actions workflow all follow it.
- The workflow for forks (.github/workflows/course.yml) passes its linters: GitHub's workflow
  schema (check-jsonschema, vendored, offline) and zizmor (offline). It runs only on GitHub.
- Learners run the notebooks on macOS and Windows too: every Linux-only call in a notebook
  cell, or in a helper function, sits next to a guard that checks the platform.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYTHONS = PYPROJECT["tool"]["course"]["pythons"]
WORKFLOW = ROOT / ".github" / "workflows" / "course.yml"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HELPERS = sorted((ROOT / "helpers").rglob("*.py"))

# Calls and paths that exist on Linux only (some on macOS too, none on Windows).
LINUX_ONLY = re.compile(
    r"os\.sched_[gs]etaffinity|/dev/shm|/proc/|signal\.SIG(?:KILL|USR1|USR2)\b|"
    r"os\.(?:killpg|getpgid|setsid|fork)\(|^\s*(?:import|from) resource\b|"
    r"(?:get_context|set_start_method)\(\s*[\"']fork[\"']",
    re.MULTILINE,
)
# What counts as checking the platform first.
GUARD = re.compile(
    r"sys\.platform|hasattr\(|get_all_start_methods\(|os\.name\b|\.is_dir\(\)|\.exists\(\)"
)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_version_list_is_well_formed():
    assert PYTHONS, "pyproject.toml needs [tool.course.pythons]"
    versions = list(PYTHONS)
    assert versions == sorted(versions, key=_version_key), "list the versions in order"
    assert set(PYTHONS.values()) <= {"tested", "written"}, PYTHONS
    tested = [v for v in versions if PYTHONS[v] == "tested"]
    assert tested, "CI must test at least one version"
    assert PYPROJECT["project"]["requires-python"] == f">={versions[0]}"


def test_classifiers_follow_the_list():
    classifiers = [
        c.rsplit(" :: ", 1)[1]
        for c in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert classifiers == list(PYTHONS)


def test_environment_yml_pins_python_to_the_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    first, last = list(PYTHONS)[0], list(PYTHONS)[-1]
    major, minor = _version_key(last)
    assert pins == [f"python>={first},<{major}.{minor + 1}"]


def test_readme_table_follows_the_list():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Which Pythons", 1)
    assert len(section) == 2, "README.md needs a '## Which Pythons' section"
    rows = re.findall(r"^\| (3\.\d+) \| (tested|written for)\b", section[1], re.MULTILINE)
    wanted = [(v, "tested" if s == "tested" else "written for") for v, s in PYTHONS.items()]
    assert rows == wanted, "README's Which Pythons table differs from [tool.course.pythons]"


def test_the_matrix_script_reads_the_list():
    script = (ROOT / ".ci" / "test-matrix").read_text()
    functions = script[script.index("pythons() {") : script.index("default_version=")]
    result = subprocess.run(
        ["bash", "-c", functions + "\npythons"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split("\n")[:-1] == [f"{v} {s}" for v, s in PYTHONS.items()]


def test_the_workflow_runs_every_listed_python_on_three_platforms():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    matrix = workflow["jobs"]["notebooks"]["strategy"]["matrix"]
    assert matrix["python"] == list(PYTHONS)
    assert sorted(matrix["os"]) == ["macos-latest", "ubuntu-latest", "windows-latest"]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize(
    "command",
    [
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"],
        ["zizmor", "--offline", "--no-progress"],
    ],
    ids=["github-schema", "zizmor"],
)
def test_the_workflow_passes_its_linters(command):
    result = subprocess.run(
        [_tool(command[0]), *command[1:], str(WORKFLOW)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def _unguarded(source: str) -> list[str]:
    """The Linux-only names in ``source`` if nothing in it checks the platform."""
    if GUARD.search(source):
        return []
    return sorted(set(LINUX_ONLY.findall(source)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_linux_only_calls_in_notebooks_are_guarded(path):
    nb = nbformat.read(path, as_version=4)
    bad = {
        i: names
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (names := _unguarded(cell.source))
    }
    assert not bad, (
        f"{path.name}: cells use Linux-only names with no platform check in the same cell "
        f"(sys.platform, hasattr(...), get_all_start_methods(), ...): {bad}"
    )


def test_linux_only_calls_in_helpers_are_guarded():
    bad = []
    for path in HELPERS:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = _unguarded(ast.get_source_segment(source, node) or "")
                if names:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {names}")
    assert not bad, "helper functions use Linux-only names with no platform check:\n" + "\n".join(
        bad
    )


@pytest.mark.parametrize(
    "source, flagged",
    [
        ("os.sched_getaffinity(0)", True),
        ("if hasattr(os, 'sched_getaffinity'):\n    os.sched_getaffinity(0)", False),
        ("os.kill(pid, signal.SIGKILL)", True),
        ("if sys.platform != 'win32':\n    os.kill(pid, signal.SIGKILL)", False),
        ("ctx = multiprocessing.get_context('fork')", True),
        ("ctx = multiprocessing.get_context('spawn')", False),
        ("print(sorted(os.listdir('/dev/shm')))", True),
        ("import resource", True),
    ],
)
def test_the_guard_check_itself(source, flagged):
    assert bool(_unguarded(source)) is flagged
