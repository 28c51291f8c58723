"""How long a chapter takes: one model, computed from what the chapter contains.

    python -m helpers.coursetime notebooks           # the table: every chapter, core and full
    python -m helpers.coursetime notebooks --write   # put the times into the title cells

The model, for a learner new to concurrency who reads everything, runs every cell and does
the exercises:

- prose: :data:`WORDS_PER_MINUTE` words a minute (markdown cells; solutions left out: the
  exercise time covers them; code inside markdown counts as code);
- code: :data:`CODE_LINES_PER_MINUTE` non-blank lines a minute, to read and understand;
- running: :data:`MINUTES_PER_CELL` per code cell, to run it and read what it shows;
- exercises: :data:`MINUTES_PER_EXERCISE` each (write, check, fix, read the solution).

A chapter's **core** time counts its title cell, its core sections (those marked
:data:`CORE_MARK`) and its key points: the path for a learner in a hurry, or a workshop,
without the exercises. The **full** time counts everything, exercises included.
Times are rounded to 5 minutes. The title cell reads ``**Time:** about N minutes (core
sections: about M minutes).``; chapter 00 gives the course's totals as ``about N hours in
all (core sections: about M hours)``. ``tests/test_coursetime.py`` fails when a written time
is more than :data:`TOLERANCE` away from the model.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

WORDS_PER_MINUTE = 150
CODE_LINES_PER_MINUTE = 15
MINUTES_PER_CELL = 0.5
MINUTES_PER_EXERCISE = 15
TOLERANCE = 0.15

CORE_MARK = "*Core section.*"
DEEPER_MARK = "*Deeper section: you can skip it on a first pass.*"
SECTION = re.compile(r"^## (\d+)\. ", re.MULTILINE)
TIME_LINE = re.compile(
    r"\*\*Time:\*\* about (\d+) minutes(?: \(core sections: about (\d+) minutes\))?\."
)
TOTAL_LINE = re.compile(
    r"about (\d+(?:\.\d)?|TOTAL_HOURS) hours in all "
    r"\(core sections: about (\d+(?:\.\d)?|CORE_HOURS) hours\)"
)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")


@dataclass
class Times:
    """A chapter's modelled time in minutes, unrounded."""

    full: float
    core: float


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _markdown_minutes(source: str) -> float:
    code_lines = 0
    for block in FENCE.finditer(source):
        code_lines += sum(1 for line in block.group(0).splitlines()[1:-1] if line.strip())
    prose = FENCE.sub(" ", source)
    prose = re.sub(r"<[^>]+>", " ", prose)  # HTML tags
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    words = len(WORD.findall(prose))
    return words / WORDS_PER_MINUTE + code_lines / CODE_LINES_PER_MINUTE


def _code_minutes(source: str) -> float:
    lines = sum(1 for line in source.splitlines() if line.strip())
    return lines / CODE_LINES_PER_MINUTE + MINUTES_PER_CELL


def _mark(text: str) -> str:
    """'core' or 'deeper' from the first line of a section's text, '' if it has no mark."""
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    first = lines[0] if lines else ""
    return {CORE_MARK: "core", DEEPER_MARK: "deeper"}.get(first, "")


def markdown_parts(source: str) -> list[tuple[str | None, str | None, str]]:
    """A markdown cell cut at its ``## `` headings: (heading, kind, text) per piece.

    The first piece has heading None when the cell does not start with a ``## `` heading.
    kind is 'core'/'deeper' for a marked numbered section, '' for an unmarked one, None for
    other ``## `` headings (Exercises, Key points) and for text before any heading."""
    pieces = re.split(r"(?m)^(?=## )", source)
    parts = []
    for piece in pieces:
        if not piece.startswith("## "):
            if piece.strip():
                parts.append((None, None, piece))
            continue
        heading = piece.splitlines()[0]
        kind = _mark(piece) if SECTION.match(heading) else None
        parts.append((heading, kind, piece))
    return parts


def section_kind(cell) -> str | None:
    """'core' or 'deeper' for a cell that starts a numbered section ('' if unmarked), None
    for any other cell. A numbered heading further down a cell counts too (the last one)."""
    if cell.get("cell_type") != "markdown":
        return None
    kinds = [
        kind for heading, kind, _ in markdown_parts(cell["source"]) if heading and kind is not None
    ]
    return kinds[-1] if kinds else None


def chapter_times(nb) -> Times:
    """The model's full and core minutes for one notebook (unrounded)."""
    parts = section_times(nb)
    return Times(
        full=sum(minutes for _, _, minutes in parts),
        core=sum(minutes for _, kind, minutes in parts if kind == "core"),
    )


def section_times(nb) -> list[tuple[str, str, float]]:
    """(heading, kind, minutes) per part of a notebook, in order: the title cell and Key
    points ('core'), each numbered section ('core' or 'deeper'), the Exercises
    ('exercises')."""
    parts: list[tuple[str, str, float]] = []
    heading, kind, minutes = "title", "core", 0.0
    for cell in nb.cells:
        tags = _tags(cell)
        if cell.cell_type == "markdown":
            if "solution" in tags:
                continue
            for piece_heading, marked, text in markdown_parts(cell.source):
                if piece_heading is not None:
                    parts.append((heading, kind, minutes))
                    heading, minutes = piece_heading.lstrip("# ").strip(), 0.0
                    if marked is None:  # Key points are core; the exercises count apart
                        marked = "exercises" if heading == "Exercises" else "core"
                    kind = marked or "core"
                minutes += _markdown_minutes(text)
        elif cell.cell_type == "code":
            if "exercise" in tags:
                minutes += MINUTES_PER_EXERCISE
            elif "check" not in tags:  # a check is part of its exercise's time
                minutes += _code_minutes(cell.source)
    parts.append((heading, kind, minutes))
    return parts


def round_minutes(minutes: float) -> int:
    """To the nearest 5 minutes, at least 5."""
    return max(5, 5 * int(minutes / 5 + 0.5))


def round_hours(minutes: float) -> str:
    """Hours to the nearest half hour, as text: '13.5', '8'."""
    halves = max(1, int(minutes / 30 + 0.5))
    return f"{halves // 2}" if halves % 2 == 0 else f"{halves / 2:.1f}"


def time_line(times: Times) -> str:
    return (
        f"**Time:** about {round_minutes(times.full)} minutes "
        f"(core sections: about {round_minutes(times.core)} minutes)."
    )


def total_line(all_times: list[Times]) -> str:
    full = sum(t.full for t in all_times)
    core = sum(t.core for t in all_times)
    return (
        f"about {round_hours(full)} hours in all (core sections: about {round_hours(core)} hours)"
    )


def written_times(nb) -> tuple[int, int] | None:
    """(full, core) minutes from the title cell's time line, or None if it has none."""
    match = TIME_LINE.search(nb.cells[0].source) if nb.cells else None
    if not match or match.group(2) is None:
        return None
    return int(match.group(1)), int(match.group(2))


def notebooks_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def write_times(folder: Path) -> list[Path]:
    """Put the model's times into every title cell and chapter 00's totals; return the
    notebooks changed. Cell ids and everything else stay as they are."""
    paths = notebooks_in(folder)
    books = {path: nbformat.read(path, as_version=4) for path in paths}
    times = {path: chapter_times(nb) for path, nb in books.items()}
    changed = []
    total = total_line(list(times.values()))
    for path, nb in books.items():
        before = [cell.source for cell in nb.cells]
        title = nb.cells[0]
        line = time_line(times[path])
        title.source = re.sub(
            r"\*\*Time:\*\* about \d+ minutes(?: \(core sections: about \d+ minutes\))?\.",
            lambda _, line=line: line,
            title.source,
            count=1,
        )
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = TOTAL_LINE.sub(total, cell.source)
        if [cell.source for cell in nb.cells] != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with NN_topic.ipynb notebooks")
    parser.add_argument("--write", action="store_true", help="update the title cells")
    parser.add_argument(
        "--sections", action="store_true", help="also list every section with its time"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"folder {args.folder} is not a directory")
    paths = notebooks_in(args.folder)
    if args.write:
        for path in write_times(args.folder):
            print(f"updated {path.name}")
    all_times = []
    print(f"{'chapter':<40} {'full':>6} {'core':>6}  (minutes)")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        times = chapter_times(nb)
        all_times.append(times)
        print(f"{path.stem:<40} {round_minutes(times.full):>6} {round_minutes(times.core):>6}")
        if args.sections:
            for heading, kind, minutes in section_times(nb):
                print(f"    {kind:<7} {minutes:5.1f}  {heading[:60]}")
    print(f"total: {total_line(all_times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
