"""The handouts (build/handouts, from `make handouts`) as a reader sees them, in headless Chromium.

Every page of both editions: loads with no console error and fetches nothing from outside;
every image is decoded and shown; every internal link reaches an existing page (and section);
external links go only to the documentation sites the course cites; the learner edition holds
no solution code and no stderr output outside cells tagged ``raises-exception``; the instructor
edition shows every solution, marked; every equation is rendered MathML, with no TeX left in
the text. Printed, the pages lose the navigation, keep the equations and cut no code off.
One screenshot per page goes to build/screenshots/handouts/.

Skipped (with the reason) without a Chromium or without a fresh build; under CI both fail.
"""

from __future__ import annotations

import functools
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from chromium import browser_context, unavailable

from helpers import coursetime
from helpers.exercises import solution_code
from helpers.handouts import chapter_summary, math_to_mathml, notebook_title

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
HANDOUTS = Path(os.environ.get("COURSE_HANDOUTS", ROOT / "build" / "handouts"))
SCREENSHOTS = ROOT / "build" / "screenshots" / "handouts"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EDITIONS = ("learner", "instructor")
PAGES = ["index.html"] + [p.with_suffix(".html").name for p in NOTEBOOKS]
# The documentation the course cites; a link anywhere else is a mistake (or needs adding here).
DOC_SITES = (
    "https://docs.python.org/",
    "https://peps.python.org/",
    "https://github.com/python/cpython/",
    "https://tqdm.github.io/",
    "https://numpy.org/doc/",
    "https://matplotlib.org/",
    "https://psutil.readthedocs.io/",
    "https://jupyterlab.readthedocs.io/",
    "https://joblib.readthedocs.io/",
    "https://docs.dask.org/",
    "https://distributed.dask.org/",
    "https://jobqueue.dask.org/",
    "https://kubernetes.dask.org/",
    "https://github.com/joblib/threadpoolctl",
    "https://docs.ray.io/",
    "https://spark.apache.org/docs/",
    "https://docs.kernel.org/",
    "https://jsonlines.org/",
)
STDERR = "application/vnd.jupyter.stderr"


@pytest.fixture(scope="module")
def handouts():
    index = HANDOUTS / "learner" / "index.html"
    if not index.is_file():
        unavailable(f"no handouts in {HANDOUTS}: run `make handouts` first")
    sources = [*NOTEBOOKS, *(ROOT / "helpers").glob("handout*"), ROOT / "helpers" / "handouts.py"]
    newest = max(p.stat().st_mtime for p in sources)
    if newest > index.stat().st_mtime:
        unavailable(f"the handouts in {HANDOUTS} are older than the notebooks: run `make handouts`")
    for edition in EDITIONS:
        built = sorted(p.name for p in (HANDOUTS / edition).glob("*.html"))
        assert built == sorted(PAGES), f"{edition} edition pages differ from notebooks/"
    return HANDOUTS


@pytest.fixture(scope="module")
def context(handouts):
    with browser_context() as ctx:
        yield ctx


def solution_lines(nb) -> list[list[str]]:
    """Per solution cell, its lines that no other cell has (so they are the answer itself)."""
    others = {
        " ".join(line.split())
        for cell in nb.cells
        if "solution" not in cell.metadata.get("tags", [])
        for line in cell.source.splitlines()
    }
    result = []
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            lines = [" ".join(ln.split()) for ln in solution_code(cell).splitlines()]
            result.append([ln for ln in lines if len(ln) >= 12 and ln not in others])
    return result


def open_page(context, url):
    """Load a page; return it with the list of problems seen while loading."""
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def only_local(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            problems.append(f"fetched from outside: {route.request.url}")
            route.abort()

    page.route("**/*", only_local)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    problems = [p for p in problems if not p.startswith(("console log", "console info"))]
    return page, problems


@functools.cache
def element_ids(path: Path) -> set[str]:
    """Every id="..." in an HTML file, entities decoded."""

    class Ids(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ids = set()

        def handle_starttag(self, tag, attrs):
            self.ids.update(value for name, value in attrs if name == "id" and value)

    parser = Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.ids


def check_links(page, here: Path):
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    for href in hrefs:
        if href.startswith(("http://", "https://")):
            assert href.startswith(DOC_SITES), (
                f"{here.name}: external link {href} is not to a documentation site the course "
                f"cites (tests/test_browser_handouts.py DOC_SITES)"
            )
            continue
        parts = urlsplit(href)
        assert not parts.scheme, f"{here.name}: unexpected link {href}"
        target = (here.parent / unquote(parts.path)).resolve() if parts.path else here
        assert target.is_file(), f"{here.name}: link {href} leads to a missing page"
        if parts.fragment and target.suffix == ".html":
            # As a browser does: the fragment as written, or percent-decoded.
            ids = element_ids(target)
            assert parts.fragment in ids or unquote(parts.fragment) in ids, (
                f"{here.name}: link {href} leads to a missing section of {target.name}"
            )


def page_text(page) -> str:
    return " ".join(page.locator("body").inner_text().split())


def check_images(page, name):
    images = page.eval_on_selector_all(
        "img",
        """els => els.map(e => ({src: e.src.slice(0, 60), complete: e.complete,
              natural: e.naturalWidth, shown: e.getBoundingClientRect().width}))""",
    )
    for img in images:
        assert img["complete"] and img["natural"] > 0, f"{name}: image not decoded: {img}"
        assert img["shown"] > 0, f"{name}: image not visible: {img}"
    return len(images)


# TeX a reader should never see as text: $...$, $$...$$, or a command such as \frac.
RAW_TEX = r"/\$\$|\$[^\s$][^$]*[^\s$]\$|\$\S\$|\\[A-Za-z]{2,}\{/"
SHOWN_MATH = """els => els.filter(e => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden';
}).length"""


def expected_math(nb, edition) -> int:
    """How many equations the notebook's markdown holds, in the cells this edition shows."""
    return sum(
        math_to_mathml(cell.source).count("<math ")
        for cell in nb.cells
        if cell.cell_type == "markdown"
        and (edition == "instructor" or "solution" not in cell.metadata.get("tags", []))
    )


def check_math(page, name, expected):
    """Every equation is rendered MathML (no MathJax, no raw TeX left in the prose)."""
    raw = page.evaluate(
        f"""() => {{
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            const found = [];
            while (walker.nextNode()) {{
                const node = walker.currentNode;
                if (node.parentElement.closest('pre, code, script, style, math')) continue;
                const hit = node.textContent.match({RAW_TEX});
                if (hit) found.push(hit[0]);
            }}
            return found;
        }}"""
    )
    assert not raw, f"{name}: TeX shown as text instead of math: {raw[:5]}"
    maths = page.locator("math")
    assert maths.count() == expected, f"{name}: {maths.count()} equations, expected {expected}"
    shown = page.eval_on_selector_all("math", SHOWN_MATH)
    assert shown == expected, f"{name}: only {shown} of {expected} equations are displayed"
    if expected:  # MathML laid out as math: a fraction is taller than one line of text
        heights = page.eval_on_selector_all(
            "math mfrac", "els => els.map(e => e.getBoundingClientRect().height)"
        )
        line = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert all(h > 1.2 * line for h in heights), f"{name}: fractions not laid out: {heights}"


def check_print(page, name, equations=0):
    page.emulate_media(media="print")
    try:
        assert not page.locator(".course-nav").is_visible(), f"{name}: navigation printed"
        shown = page.eval_on_selector_all("math", SHOWN_MATH)
        assert shown == equations, f"{name}: {shown} of {equations} equations printed"
        cut = page.eval_on_selector_all(
            "pre",
            """els => els.filter(e => e.getBoundingClientRect().width > 0
                                   && e.scrollWidth > e.clientWidth + 1)
                        .map(e => e.textContent.slice(0, 80))""",
        )
        assert not cut, f"{name}: printed code cut off at the page edge: {cut}"
    finally:
        page.emulate_media(media="screen")


@pytest.mark.parametrize("edition", EDITIONS)
def test_index_lists_every_chapter_with_time_and_goals(context, handouts, edition):
    path = handouts / edition / "index.html"
    page, problems = open_page(context, path.as_uri())
    try:
        assert not problems, f"{edition}/index.html: {problems}"
        check_links(page, path)
        sections = page.locator("section.chapter")
        assert sections.count() == len(NOTEBOOKS)
        total = coursetime.total_line(
            [coursetime.chapter_times(nbformat.read(p, as_version=4)) for p in NOTEBOOKS]
        )
        assert total in page.locator(".total").inner_text(), f"{edition}: no course total"
        for i, nb_path in enumerate(NOTEBOOKS):
            nb = nbformat.read(nb_path, as_version=4)
            time_text, goals = chapter_summary(nb)
            section = sections.nth(i)
            link = section.locator("h2 a")
            assert link.get_attribute("href") == nb_path.with_suffix(".html").name
            assert link.inner_text() == notebook_title(nb, nb_path.stem)
            assert time_text, f"{nb_path.name}: no '**Time:** about N minutes' in the title cell"
            assert section.locator(".time").inner_text() == time_text
            assert section.locator(".goals li").count() == len(goals) > 0, nb_path.name
        SCREENSHOTS.joinpath(edition).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / edition / "index.png", full_page=True)
        check_print(page, f"{edition}/index.html")
    finally:
        page.close()


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_page(context, handouts, edition, nb_path):
    path = handouts / edition / nb_path.with_suffix(".html").name
    nb = nbformat.read(nb_path, as_version=4)
    page, problems = open_page(context, path.as_uri())
    try:
        assert not problems, f"{edition}/{path.name}: {problems}"
        assert page.title() == notebook_title(nb, nb_path.stem)
        check_links(page, path)
        check_images(page, f"{edition}/{path.name}")
        equations = expected_math(nb, edition)
        check_math(page, f"{edition}/{path.name}", equations)
        solutions = solution_lines(nb)
        labels = page.locator(".course-solution-label")
        if edition == "learner":
            assert labels.count() == 0, f"{path.name}: a solution is in the learner edition"
            # A solution line may also be shown elsewhere (a helper's printed source): the
            # learner page shows it exactly as often as the instructor page does outside
            # the solutions.
            text = page_text(page)
            full, _ = open_page(context, (handouts / "instructor" / path.name).as_uri())
            try:
                full_text = page_text(full)
            finally:
                full.close()
            # Whole solution texts: a line may also stand inside another line of a solution
            # (a docstring that names it), which solution_lines leaves out.
            solution_texts = [
                " ".join(solution_code(cell).split())
                for cell in nb.cells
                if "solution" in cell.metadata.get("tags", [])
            ]
            for lines in solutions:
                for line in lines:
                    in_solutions = sum(text.count(line) for text in solution_texts)
                    assert text.count(line) == full_text.count(line) - in_solutions, (
                        f"learner/{path.name} shows solution code: {line}"
                    )
            stray = page.eval_on_selector_all(
                f'[data-mime-type="{STDERR}"]',
                """els => els.filter(e => !e.closest('.celltag_raises-exception'))
                            .map(e => e.textContent.slice(0, 200))""",
            )
            assert not stray, f"learner/{path.name}: stderr outside raises-exception: {stray}"
        else:
            assert labels.count() == len(solutions), f"{path.name}: every solution is marked"
            for lines in solutions:
                for line in lines[:3]:
                    shown = page.locator("pre", has_text=line).first
                    assert shown.is_visible(), f"instructor/{path.name}: solution hidden: {line}"
        SCREENSHOTS.joinpath(edition).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / edition / f"{nb_path.stem}.png")
        check_print(page, f"{edition}/{path.name}", equations)
    finally:
        page.close()
