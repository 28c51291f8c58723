"""The pre-commit hook that clears notebook outputs, and the hook configuration itself."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]


def strip(*paths):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "strip_outputs.py"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clears_outputs_and_counts_and_says_so(tmp_path):
    cell = new_code_cell("print(1)", execution_count=3)
    cell.outputs = [new_output("stream", name="stdout", text="1\n")]
    nb = new_notebook(cells=[new_markdown_cell("# 00 · A"), cell])
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "00_a.ipynb"
    nbformat.write(nb, path)
    result = strip(path)
    assert result.returncode == 1 and "cleared outputs" in result.stdout
    cleaned = nbformat.read(path, as_version=4)
    nbformat.validate(cleaned)
    assert cleaned.cells[1].outputs == [] and cleaned.cells[1].execution_count is None
    assert cleaned.cells[1].id == cell.id and "widgets" not in cleaned.metadata
    before = path.read_text()
    assert strip(path).returncode == 0 and path.read_text() == before


def test_leaves_the_course_notebooks_byte_for_byte(tmp_path):
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(source, tmp_path / source.name)
    copies = sorted(tmp_path.glob("*.ipynb"))
    assert strip(*copies).returncode == 0
    for copy in copies:
        assert copy.read_bytes() == (ROOT / "notebooks" / copy.name).read_bytes(), copy.name


def test_pre_commit_config_is_valid():
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    assert pre_commit, "pre-commit is not installed (pip install -e '.[test]')"
    result = subprocess.run(
        [pre_commit, "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
