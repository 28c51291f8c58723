"""Honest times and a core path: every numbered section is marked core or deeper, core
sections never use what only a deeper one defined, and the times written in the title cells
(and chapter 00's totals) are the model's (helpers/coursetime.py), within 15%."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import coursetime

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = coursetime.notebooks_in(ROOT / "notebooks")
BUILTINS = set(dir(builtins)) | {"display", "get_ipython", "__name__", "__file__"}


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_every_numbered_section_is_marked_core_or_deeper(notebook):
    path, nb = notebook
    kinds = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for heading, kind, _ in coursetime.markdown_parts(cell.source):
            if heading is None or kind is None:
                continue
            assert kind, (
                f"{path.name}: {heading!r} needs, on the line after the heading, "
                f"{coursetime.CORE_MARK!r} or {coursetime.DEEPER_MARK!r}"
            )
            kinds[heading] = kind
    assert kinds, f"{path.name} has no numbered sections"
    assert "core" in kinds.values(), f"{path.name}: at least one section must be core"


def _code(source: str) -> str:
    """Cell source with IPython's magics and shell lines turned into comments."""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names the code defines, names it reads)."""
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
            args = node.args if not isinstance(node, ast.ClassDef) else None
            if args:
                for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    defined.add(arg.arg)
                for arg in (args.vararg, args.kwarg):
                    if arg:
                        defined.add(arg.arg)
        elif isinstance(node, ast.Lambda):
            defined.update(a.arg for a in node.args.args)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return defined, used


def core_uses_of_deeper_names(nb) -> list[str]:
    """'section: name' for each name a core cell reads that only a deeper section defined."""
    kind, heading = "core", "title"
    core_defined: set[str] = set()
    deeper_defined: set[str] = set()
    problems = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for piece_heading, marked, _ in coursetime.markdown_parts(cell.source):
                if piece_heading is None:
                    continue
                heading = piece_heading
                if marked is None:
                    kind = "exercises" if heading == "## Exercises" else "core"
                else:
                    kind = marked or "core"
            continue
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_code(cell.source))
        except SyntaxError:
            continue  # a cell that shows a syntax error on purpose
        defined, used = _names(tree)
        if kind == "core":
            for name in sorted(used - defined - BUILTINS - core_defined):
                if name in deeper_defined:
                    problems.append(f"{heading}: {name}")
            core_defined |= defined
        else:
            deeper_defined |= defined - core_defined
    return problems


def test_core_sections_never_depend_on_deeper_ones(notebook):
    path, nb = notebook
    problems = core_uses_of_deeper_names(nb)
    assert not problems, (
        f"{path.name}: core code uses names defined only in a deeper section (define them in "
        f"a core section, or mark the section deeper): {problems}"
    )


def _within(written: float, model: float) -> bool:
    return abs(written - model) <= coursetime.TOLERANCE * model + 2.5  # 5-minute rounding


def test_title_cell_time_is_the_models(notebook):
    path, nb = notebook
    written = coursetime.written_times(nb)
    assert written, (
        f"{path.name}: the title cell needs '**Time:** about N minutes (core sections: about "
        "M minutes).' (python -m helpers.coursetime notebooks --write)"
    )
    model = coursetime.chapter_times(nb)
    assert _within(written[0], model.full) and _within(written[1], model.core), (
        f"{path.name}: the title says {written[0]} minutes (core {written[1]}), the model "
        f"{model.full:.0f} (core {model.core:.0f}): python -m helpers.coursetime notebooks --write"
    )


def test_chapter_00_gives_the_course_total():
    welcome = nbformat.read(NOTEBOOKS[0], as_version=4)
    text = "\n".join(c.source for c in welcome.cells if c.cell_type == "markdown")
    match = coursetime.TOTAL_LINE.search(text)
    assert match, f"{NOTEBOOKS[0].name} needs 'about N hours in all (core sections: about M hours)'"
    times = [coursetime.chapter_times(nbformat.read(p, as_version=4)) for p in NOTEBOOKS]
    for written, minutes in zip(
        match.groups(), (sum(t.full for t in times), sum(t.core for t in times)), strict=True
    ):
        assert re.fullmatch(r"\d+(\.\d)?", written), "chapter 00's total is not filled in"
        assert _within(60 * float(written), minutes), (
            f"chapter 00 says {written} hours, the model {minutes / 60:.1f}: "
            "python -m helpers.coursetime notebooks --write"
        )


# The model itself, on a made-up chapter.


def _chapter():
    return new_notebook(
        cells=[
            new_markdown_cell("# 99 · Test\n\n" + "word " * 150),  # 1 minute
            new_markdown_cell(f"## 1. Core\n\n{coursetime.CORE_MARK}\n\n" + "word " * 300),
            new_code_cell("\n".join(f"x{i} = {i}" for i in range(15))),  # 1 + 0.5 minutes
            new_markdown_cell(f"## 2. Deeper\n\n{coursetime.DEEPER_MARK}\n\n" + "word " * 150),
            new_code_cell("y = x0 + 1"),
            new_markdown_cell("## Exercises\n\n### Exercise 1: t"),
            new_code_cell("answer = None", metadata={"tags": ["exercise"]}),
            new_code_cell("check(answer)", metadata={"tags": ["check", "raises-exception"]}),
            new_markdown_cell(
                "<details><summary>Solution</summary>\n\n```python\n"
                + "a = 1\n" * 100
                + "```\n\n</details>",
                metadata={"tags": ["solution"]},
            ),
        ]
    )


def test_the_model_counts_words_code_cells_and_exercises():
    times = coursetime.chapter_times(_chapter())
    # title, section 1 (its words, one code cell of 15 lines); headings and marks add a
    # few words. The full time adds section 2 and the exercise; the solution's 100 lines
    # are not counted
    core = 150 / 150 + 300 / 150 + (15 / 15 + 0.5)
    deeper = 150 / 150 + (1 / 15 + 0.5)
    assert times.core == pytest.approx(core, abs=0.2)
    assert times.full - times.core == pytest.approx(deeper + 15, abs=0.2)


def test_core_code_using_a_deeper_name_is_found():
    nb = _chapter()
    nb.cells.insert(5, new_markdown_cell(f"## 3. Core again\n\n{coursetime.CORE_MARK}"))
    nb.cells.insert(6, new_code_cell("print(y, x1)"))
    assert core_uses_of_deeper_names(nb) == ["## 3. Core again: y"]


def test_write_times_fills_the_title_and_the_total(tmp_path):
    nb = _chapter()
    nb.cells[0].source += "\n\n**Time:** about 1 minutes. **Builds on:** nothing."
    nb.cells[
        1
    ].source += "\n\nAll: about TOTAL_HOURS hours in all (core sections: about CORE_HOURS hours)."
    nbformat.write(nb, tmp_path / "99_test.ipynb")
    assert coursetime.write_times(tmp_path) == [tmp_path / "99_test.ipynb"]
    back = nbformat.read(tmp_path / "99_test.ipynb", as_version=4)
    assert coursetime.written_times(back) == (20, 5)  # 21.3 and 4.6 minutes
    assert "about 0.5 hours in all (core sections: about 0.5 hours)" in back.cells[1].source
    assert [c.id for c in back.cells] == [c.id for c in nb.cells]
    assert coursetime.write_times(tmp_path) == []  # nothing left to change


def test_a_heading_in_the_middle_of_a_cell_starts_its_section():
    source = (
        f"End of section 1.\n\n## 2. Two\n\n{coursetime.DEEPER_MARK}\n\nText.\n\n"
        f"## 3. Three\n\nNo mark here.\n\n## Key points\n"
    )
    parts = coursetime.markdown_parts(source)
    assert [(h, k) for h, k, _ in parts] == [
        (None, None),
        ("## 2. Two", "deeper"),
        ("## 3. Three", ""),
        ("## Key points", None),
    ]
    assert coursetime.section_kind(new_markdown_cell(source)) == ""
