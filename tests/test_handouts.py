"""The handout build: two editions, working links, embedded charts, loud failures."""

import re
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import handouts


def notebook(folder, name, cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, folder / name)


def exercise(skeleton, check, solution):
    """The three cells of an exercise, as helpers.exercises lays them out."""
    return [
        new_code_cell(skeleton, metadata={"tags": ["exercise"]}),
        new_code_cell(check, metadata={"tags": ["check", "raises-exception"]}),
        new_markdown_cell(
            f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>",
            metadata={"tags": ["solution"]},
        ),
    ]


def shown_error():
    """A cell that fails on purpose, writing to stderr at the file-descriptor level too."""
    cell = new_code_cell(
        "import os\nos.write(2, b'FD-LEVEL-STDERR\\n')\nraise ValueError('shown on purpose')"
    )
    cell.metadata["tags"] = ["raises-exception"]
    return cell


def build(src, out):
    return subprocess.run(
        [sys.executable, "-m", "helpers.handouts", "--out", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("notebooks")
    notebook(
        src,
        "00_alpha.ipynb",
        [
            new_markdown_cell(
                "# 00 · Alpha\nNext: [Beta](01_beta.ipynb), "
                "[its part two](01_beta.ipynb#Part-two), "
                "[docs](https://docs.python.org/3/library/multiprocessing.html)."
            ),
            new_code_cell(
                "import matplotlib.pyplot as plt\nfrom helpers import timeline, work\n"
                "timeline.plot_timeline([work.fake_download(u, 0.01) for u in work.URLS])\n"
                "plt.show()"
            ),
            *exercise(
                "answer = None  # your code here",
                "from helpers.checks import expect\nexpect(answer == 'SECRET', 'NOT-YET-HINT')",
                "answer = 'SECRET-SOLUTION'",
            ),
        ],
    )
    notebook(
        src,
        "01_beta.ipynb",
        [
            new_markdown_cell("# 01 · Beta\nBack to [Alpha](00_alpha.ipynb).\n## Part two"),
            new_markdown_cell(
                "Inline $S(n) = T(1)/T(n)$, and displayed:\n\n"
                "$$S(n) = \\frac{1}{f + (1-f)/n}$$\n\nbut not in code: `echo $HOME $PATH`."
            ),
            new_code_cell("print('beta ran')"),
            shown_error(),
            new_code_cell(
                "from tqdm.auto import tqdm\nfor _ in tqdm(range(30), desc='squares'):\n    pass"
            ),
        ],
    )
    out = tmp_path_factory.mktemp("build") / "handouts"
    result = build(src, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return src, out, result.stdout + result.stderr


def test_progress_is_one_line_per_notebook(built):
    _, out, stdout = built
    # what cells write to stderr is in the page, not among the progress lines
    assert "FD-LEVEL-STDERR" not in stdout
    page = (out / "learner" / "01_beta.html").read_text()
    assert "FD-LEVEL-STDERR" in page and "shown on purpose" in page
    assert re.search(r"^\[1/2\] 00_alpha\.ipynb \.\.\. ok", stdout, re.MULTILINE)
    assert re.search(r"^\[2/2\] 01_beta\.ipynb \.\.\. ok", stdout, re.MULTILINE)


@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_each_edition_has_an_index_linking_every_chapter_by_title(built, edition):
    _, out, _ = built
    folder = out / edition
    assert sorted(p.name for p in folder.iterdir()) == [
        "00_alpha.html",
        "01_beta.html",
        "index.html",
    ]
    index = (folder / "index.html").read_text()
    assert '<a href="00_alpha.html">00 · Alpha</a>' in index
    assert '<a href="01_beta.html">01 · Beta</a>' in index
    for page in folder.glob("*.html"):
        text = page.read_text()
        for href in re.findall(r'href="([^"#]+)(?:#[^"]*)?"', text):
            if not href.startswith(("http://", "https://")):
                assert (folder / href).is_file(), f"{page.name} links to missing {href}"
        assert ".ipynb" not in " ".join(re.findall(r'href="([^"]*)"', text))


@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_pages_are_self_contained_with_embedded_charts(built, edition):
    _, out, _ = built
    page = (out / edition / "00_alpha.html").read_text()
    assert re.search(r'<img [^>]*src="data:image/png;base64,', page)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)
    beta = (out / edition / "01_beta.html").read_text()
    assert "beta ran" in beta
    # a progress bar shows its final state as text, not a widget the page can't run
    assert re.search(r"squares: 100%\|█+\| 30/30", beta), beta[-3000:]


@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_math_is_mathml_and_code_keeps_its_dollars(built, edition):
    _, out, _ = built
    page = (out / edition / "01_beta.html").read_text()
    tags = re.findall(r"<math [^>]*>", page)
    assert len(tags) == 2 and all("http://www.w3.org/1998/Math/MathML" in tag for tag in tags)
    assert sorted(re.search(r'display="(\w+)"', tag).group(1) for tag in tags) == [
        "block",
        "inline",
    ]
    assert "<mfrac>" in page
    assert "echo $HOME $PATH" in page
    assert "$S(n)" not in page and "$$" not in page and "\\frac" not in page


@pytest.mark.parametrize(
    "markdown, inline, block",
    [
        ("speed-up $S = T(1)/T(n)$ here", 1, 0),
        ("$$\n\\frac{1}{f}\n$$", 0, 1),
        ("two: $a$ and $b_1$", 2, 0),
        ("money: \\$3 and $ 4 $ stay text", 0, 0),
        ("`$x$` and\n```\n$$y$$\n```\n", 0, 0),
    ],
)
def test_math_to_mathml_converts_only_math_outside_code(markdown, inline, block):
    html_text = handouts.math_to_mathml(markdown)
    assert html_text.count('display="inline"') == inline
    assert html_text.count('display="block"') == block


@pytest.mark.parametrize("tex", ["x^", "\\left( x", "\\fraq{1}{2}"])
def test_math_that_cannot_be_converted_names_itself(tex):
    with pytest.raises(ValueError, match=re.escape(tex)):
        handouts.math_to_mathml(f"broken ${tex}$ here")


def test_learner_edition_has_no_solutions_and_instructor_edition_does(built):
    _, out, _ = built
    learner = (out / "learner" / "00_alpha.html").read_text()
    assert "SECRET-SOLUTION" not in learner
    instructor = (out / "instructor" / "00_alpha.html").read_text()
    assert "SECRET-SOLUTION" in instructor and "course-solution-label" in instructor
    assert "<details open" in instructor  # shown, not collapsed
    for page in (learner, instructor):  # the check ran on the untouched skeleton
        assert "Not yet: NOT-YET-HINT" in page


def test_a_failing_notebook_names_itself_and_its_cell_and_keeps_the_old_build(built, tmp_path):
    src, out, _ = built
    broken = tmp_path / "notebooks"
    broken.mkdir()
    for path in src.glob("*.ipynb"):
        (broken / path.name).write_bytes(path.read_bytes())
    notebook(
        broken,
        "02_broken.ipynb",
        [
            new_markdown_cell("# 02 · Broken"),
            new_code_cell("x = 1"),
            new_code_cell("raise ValueError('boom in cell')"),
        ],
    )
    before = sorted(p.name for p in (out / "learner").iterdir())
    result = build(broken, out)
    assert result.returncode == 1
    assert "02_broken.ipynb: code cell 1" in result.stderr and "boom in cell" in result.stderr
    assert "[3/3] 02_broken.ipynb ... FAILED" in result.stdout
    assert sorted(p.name for p in (out / "learner").iterdir()) == before
    assert not list(out.parent.glob("handouts-*")), "staging folder left behind"


def test_titles_are_plain_text():
    nb = new_notebook(cells=[new_markdown_cell("# 02 · Process pools (`multiprocessing.Pool`)")])
    assert handouts.notebook_title(nb, "x") == "02 · Process pools (multiprocessing.Pool)"


def test_links_are_rewritten_only_for_local_notebooks():
    nb = new_notebook(
        cells=[
            new_markdown_cell(
                "[a](01_x.ipynb) [b](01_x.ipynb#Sec) "
                '[c](https://example.org/y.ipynb) [d](02_y.ipynb "t")'
            )
        ]
    )
    handouts.rewrite_links(nb)
    assert nb.cells[0].source == (
        '[a](01_x.html) [b](01_x.html#Sec) [c](https://example.org/y.ipynb) [d](02_y.html "t")'
    )


@pytest.mark.parametrize(
    "title",
    [
        "# 01 · A\n\n**You will learn to**\n- start a `Process`;\n- wait for it\n  and read\n"
        "  its exit code.\n\n**Time:** about 45 minutes. **Builds on:** [00](00_a.ipynb).",
        "# 01 · A\n\n**Learning objectives**: after this chapter you can\n\n1. start a `Process`;\n"
        "2. wait for it and read its exit code.\n\n**Time**: about 45 minutes.\n\n**Builds on**: x",
    ],
)
def test_chapter_summary_reads_time_and_goals_from_the_title_cell(title):
    nb = new_notebook(cells=[new_markdown_cell(title), new_markdown_cell("**Time:** wrong")])
    time_text, goals = handouts.chapter_summary(nb)
    assert time_text == "about 45 minutes"
    assert goals == ["start a `Process`;", "wait for it and read its exit code."]


def test_index_page_lists_time_and_goals_escaped():
    page = handouts.index_page(
        [("01_a.html", "01 · A <b>", "about 5 minutes", ["use `x<y`, **every** [doc](d.ipynb)"])],
        "learner",
        "about 2 hours in all (core sections: about 1 hours)",
    )
    assert "The whole course: about 2 hours in all (core sections: about 1 hours)." in page
    assert '<a href="01_a.html">01 · A &lt;b&gt;</a>' in page
    assert '<p class="time">about 5 minutes</p>' in page
    assert "<li>use <code>x&lt;y</code>, <strong>every</strong> doc</li>" in page
    assert "@media print" in page
