"""Repository hygiene: clean notebooks, the chapter contract's shape, dependency files in sync."""

import itertools
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers.exercises import exercises

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .ipynb files"


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_file_names_are_numbered_and_unique():
    numbers = []
    for path in NOTEBOOKS:
        match = NAME.match(path.name)
        assert match, f"{path.name}: name notebooks NN_topic.ipynb (lower case, underscores)"
        numbers.append(match.group(1))
    assert len(numbers) == len(set(numbers)), f"two notebooks share a chapter number: {numbers}"


def test_valid_and_stored_without_outputs(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def test_kernelspec_is_python3(notebook):
    path, nb = notebook
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name


def test_starts_with_a_title_cell_naming_its_chapter(notebook):
    path, nb = notebook
    first = nb.cells[0]
    number = path.name[:2]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be the title"
    assert first.source.startswith(f"# {number} · "), (
        f"{path.name}: the first cell must start with '# {number} · Topic'"
    )


def _sections(nb):
    """Split cells at markdown headings: [(heading, [cells])]."""
    sections, heading = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            heading = cell.source.lstrip().splitlines()[0]
            sections.append((heading, []))
        elif sections:
            sections[-1][1].append(cell)
    return sections


def test_exercises_are_laid_out_exercise_check_solution(notebook):
    path, nb = notebook
    try:
        found = exercises(nb)
    except ValueError as exc:
        pytest.fail(f"{path.name}: {exc}")
    for ex in found:
        compile(ex.solution_code, f"{path.name} solution after cell {ex.index}", "exec")
    starts = {ex.index for ex in found}
    for heading, cells in _sections(nb):
        if re.search(r"\bexercise\b", heading, re.IGNORECASE):
            tagged = [c for c in cells if "exercise" in c.metadata.get("tags", [])]
            assert len(tagged) == 1, (
                f"{path.name}: section {heading!r} needs one exercise cell, then its check "
                "and solution (see helpers/exercises.py)"
            )
    assert len(starts) == len(found)


def test_links_between_chapters_point_at_existing_notebooks(notebook):
    path, nb = notebook
    names = {p.name for p in NOTEBOOKS}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for target in re.findall(r"\]\(([^)\s#]+\.ipynb)", cell.source):
                assert target in names, f"{path.name} links to missing notebook {target}"


def _anchor(heading):
    """The id JupyterLab and nbconvert give a heading: its text, spaces turned into '-'."""
    return heading.lstrip("#").strip().replace("`", "").replace(" ", "-")


def _anchors(nb):
    return {
        _anchor(line)
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("#")
    }


def test_links_to_sections_point_at_existing_headings(notebook):
    path, nb = notebook
    anchors = {p.name: _anchors(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for target, anchor in re.findall(
            r"\]\(([\w.]*\.ipynb)?#([^\s]+?)\)(?=[\s,;.:|]|$)", cell.source, re.MULTILINE
        ):
            name = target or path.name
            if name in anchors:  # a missing notebook is the test above's failure
                assert anchor in anchors[name], (
                    f"{path.name} links to #{anchor} in {name}: no heading has that anchor"
                )


def _name_and_spec(requirement):
    """("name", "spec") of a requirement; extras are dropped: pip's dask[distributed] is
    conda-forge's dask, which includes distributed."""
    requirement = requirement.split(";")[0].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(.*)$", requirement)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(map(_name_and_spec, project["dependencies"]))
    extras = project["optional-dependencies"]
    for group in extras.values():
        wanted.update(map(_name_and_spec, group))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip = dep["pip"]
        else:
            name, spec = _name_and_spec(dep)
            conda[name] = spec
    python_spec = conda.pop("python")
    conda.pop("pip")
    assert python_spec.startswith(project["requires-python"])
    assert conda == wanted, "environment.yml and pyproject.toml list different packages"
    assert pip == [f"-e .[{','.join(extras)}]"]


def test_ruff_check_and_format_are_clean():
    import shutil
    import subprocess

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed (pip install -e '.[test]')"
    paths = ["helpers", "tests", "tools", "conftest.py", "notebooks"]
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, *paths], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_readme_links_point_at_existing_files():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)\s#]+)\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README.md links to missing {target}"


def test_each_chapter_ends_by_linking_the_next_one():
    for path, following in itertools.pairwise(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        last = [c for c in nb.cells if c.cell_type == "markdown"][-1].source
        assert f"({following.name})" in last, (
            f"{path.name}: the closing cell should link the next chapter, {following.name}"
        )


def test_every_chapter_has_the_same_structure(notebook):
    """The layout every chapter shares: see 'How a chapter is laid out' in README.md."""
    path, nb = notebook
    first = nb.cells[0].source
    for part in ("**You will learn to**", "**Time:** about ", "**Builds on:**"):
        assert part in first, f"{path.name}: the title cell must contain {part!r}"
    assert re.search(r"\*\*Time:\*\* about \d+ minutes", first), (
        f"{path.name}: write the time as '**Time:** about N minutes'"
    )
    headings = [
        line
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("#")
    ]
    sections = [h for h in headings if h.startswith("## ")]
    numbered = [h for h in sections if re.match(r"## \d+\. ", h)]
    assert numbered, f"{path.name}: number the teaching sections '## 1. Title'"
    assert [int(re.match(r"## (\d+)\.", h).group(1)) for h in numbered] == list(
        range(1, len(numbered) + 1)
    ), f"{path.name}: sections are numbered 1, 2, 3, ... in order: {numbered}"
    assert "## Key points" in sections, f"{path.name}: end with a '## Key points' section"
    for old in ("## Summary", "Learning objectives", "## Documentation"):
        assert not any(h.startswith(old) for h in headings) and old not in first, (
            f"{path.name}: {old!r} is not one of the course's headings"
        )
    exercise_headings = [h for h in headings if re.search(r"\bExercise\b", h)]
    if exercises(nb):
        assert "## Exercises" in sections, (
            f"{path.name}: exercises go in one '## Exercises' section"
        )
        for h in exercise_headings:
            if h != "## Exercises":
                assert re.match(r"### Exercise \d+: \S", h), (
                    f"{path.name}: exercise headings read '### Exercise N: title', got {h!r}"
                )


WRITER_NOTES = re.compile(
    r"reference tutorial|the reference'?s?\b|classic demo|while reviewing|pytest run|"
    r"used to test this course|wall time|measured while|when this was written",
    re.IGNORECASE,
)


def test_text_is_written_for_the_learner(notebook):
    """No authoring notes and no pointers to material the learner doesn't have."""
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        found = WRITER_NOTES.search(cell.source)
        assert not found, (
            f"{path.name} cell {i}: {found.group(0)!r}: notes about how the chapter was made "
            "belong on the issue, not in the notebook"
        )


def test_title_cell_gives_goals_and_time_for_the_handout_index(notebook):
    from helpers.handouts import chapter_summary

    path, nb = notebook
    time_text, goals = chapter_summary(nb)
    assert time_text, f"{path.name}: the title cell needs a line '**Time:** about N minutes.'"
    assert goals, f"{path.name}: the title cell needs a '**You will learn to**' list"
