"""How an exercise is laid out in a chapter notebook, for the tools that handle it.

Every exercise is three consecutive cells (a markdown statement comes before them):

1. a code cell tagged ``exercise``: the skeleton the learner fills in;
2. a code cell tagged ``check`` and ``raises-exception``: runs the check on the learner's
   answer ("Correct: ..." or ``ExerciseFailed``, which JupyterLab's Run All steps over);
3. a markdown cell tagged ``solution``: a collapsed ``<details>`` block holding one
   ```` ```python ```` code block. It is text, so nothing runs it unless the learner copies it.

The test harness, the hygiene tests and the handout builder all read notebooks through
:func:`exercises`, so the layout is defined once, here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SUMMARY = "<details><summary>Solution</summary>"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def tags(cell: Any) -> list[str]:
    """The cell's tags (an empty list if it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def solution_code(cell: Any) -> str:
    """The Python code inside a solution cell; ValueError if the cell is not one."""
    if cell.get("cell_type") != "markdown" or "solution" not in tags(cell):
        raise ValueError("cell must be a markdown cell tagged 'solution'")
    source = cell["source"]
    if not source.startswith(SUMMARY) or not source.rstrip().endswith("</details>"):
        raise ValueError(
            f"a solution cell must start with {SUMMARY!r} and end with '</details>', "
            f"got: {source[:80]!r}"
        )
    blocks = CODE_BLOCK.findall(source)
    if len(blocks) != 1:
        raise ValueError(f"a solution cell holds exactly one ```python block, found {len(blocks)}")
    return blocks[0]


@dataclass
class Exercise:
    """The three cells of one exercise, with their positions in ``nb.cells``."""

    exercise: Any
    check: Any
    solution: Any
    index: int  # position of the exercise cell

    @property
    def solution_code(self) -> str:
        return solution_code(self.solution)


def exercises(nb: Any) -> list[Exercise]:
    """Every exercise in a notebook, in order; ValueError naming the cell if one is malformed."""
    cells = nb["cells"]
    found = []
    for i, cell in enumerate(cells):
        cell_tags = tags(cell)
        if not {"exercise", "check", "solution"} & set(cell_tags):
            continue
        if "exercise" in cell_tags:
            trio = cells[i : i + 3]
            if len(trio) < 3:
                raise ValueError(f"cell {i}: an exercise cell must be followed by check, solution")
            ex, check, sol = trio
            if ex["cell_type"] != "code":
                raise ValueError(f"cell {i}: the exercise cell must be a code cell")
            if check["cell_type"] != "code" or not {"check", "raises-exception"} <= set(
                tags(check)
            ):
                raise ValueError(
                    f"cell {i + 1}: after an exercise cell comes its check, a code cell "
                    "tagged 'check' and 'raises-exception'"
                )
            try:
                solution_code(sol)
            except ValueError as exc:
                raise ValueError(f"cell {i + 2}: {exc}") from None
            found.append(Exercise(ex, check, sol, i))
        elif not any(e.index in (i - 1, i - 2) for e in found):
            raise ValueError(
                f"cell {i} is tagged {cell_tags} but does not follow an exercise cell "
                "(the order is exercise, check, solution)"
            )
    return found
