"""Render the course notebooks as static HTML handouts.

    python -m helpers.handouts --out build/handouts notebooks

Executes each notebook once (in a kernel of this Python environment), then writes a
learner edition (cells tagged ``solution`` removed) and an instructor edition (all
cells, solutions shown open), each with one self-contained HTML file per chapter and an
``index.html``.
Links between chapters (``01_processes.ipynb``) are rewritten to ``.html``. The output
folder is replaced only when every notebook rendered; a failure names the notebook
and the cell, and exits non-zero.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from latex2mathml.converter import convert as latex_to_mathml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from helpers import coursetime

TEMPLATE_DIR = Path(__file__).with_name("handout_template")
EDITIONS = {"learner": {"solution"}, "instructor": set()}
# [text](NN_topic.ipynb) or [text](NN_topic.ipynb#section), not http(s) links.
LINK = re.compile(r"(\]\((?![a-z]+://)[^)\s]*?)\.ipynb(#[^)\s]*)?(\s+\"[^\"]*\")?\)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class HandoutError(RuntimeError):
    """A notebook failed to render; the message names the notebook and cell."""


class _CurrentEnvKernels(KernelSpecManager):
    """Always start the kernel with this Python, whatever kernelspecs the user has."""

    def get_kernel_spec(self, kernel_name):
        import ipykernel.kernelspec

        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
        )


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the first markdown heading, e.g. '01 · Processes'."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip().replace("`", "")  # plain text for links and <title>
    return fallback


def rewrite_links(nb: nbformat.NotebookNode) -> None:
    """Point links to other notebooks at their HTML handouts."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = LINK.sub(
                lambda m: f"{m.group(1)}.html{m.group(2) or ''}{m.group(3) or ''})", cell.source
            )


# Markdown that must stay as written: fenced code blocks and `code spans`.
_VERBATIM = re.compile(r"^(```|~~~).*?^\1[ \t]*$|(`+)[^`].*?\2", re.DOTALL | re.MULTILINE)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![$\w])")


def math_to_mathml(markdown: str) -> str:
    """Turn ``$$...$$`` and ``$...$`` TeX in Markdown into MathML, outside code.

    The handouts are self-contained pages with no MathJax, so the math is converted when
    they are built; browsers render MathML natively. ValueError names TeX that can't be
    converted.
    """

    def convert(tex: str, display: str) -> str:
        try:
            mathml = latex_to_mathml(" ".join(tex.split()), display=display)
        except Exception as exc:  # latex2mathml raises assorted errors on bad TeX
            raise ValueError(f"can't convert the math ${tex}$ to MathML: {exc!r}") from None
        unknown = re.findall(r"\\[A-Za-z]+", mathml)  # passed through as text, unrendered
        if unknown:
            raise ValueError(f"can't convert the math ${tex}$ to MathML: unknown {unknown}")
        return mathml

    def prose(text: str) -> str:
        text = _DISPLAY_MATH.sub(lambda m: convert(m.group(1), "block"), text)
        return _INLINE_MATH.sub(lambda m: convert(m.group(1), "inline"), text)

    out, last = [], 0
    for match in _VERBATIM.finditer(markdown):
        out += [prose(markdown[last : match.start()]), match.group(0)]
        last = match.end()
    out.append(prose(markdown[last:]))
    return "".join(out)


def convert_math(nb: nbformat.NotebookNode) -> None:
    """Replace the TeX in every markdown cell with MathML (see :func:`math_to_mathml`)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source)


def _tqdm_text(model_id: str, state: dict) -> str | None:
    """A tqdm bar's last state as text, from the saved widget state (None if not a tqdm bar)."""
    model = state.get(model_id, {})
    children = model.get("state", {}).get("children", [])
    if model.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    left, bar, right = (
        state.get(child.removeprefix("IPY_MODEL_"), {}).get("state", {}) for child in children
    )
    if not bar.get("max"):
        return None
    filled = min(10, round(10 * bar.get("value", 0) / bar["max"]))
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def _drop_widget_views(nb: nbformat.NotebookNode) -> None:
    """Static pages can't run widgets: keep their text form (e.g. a tqdm bar's last state)."""
    saved = nb.metadata.pop("widgets", {})
    state = saved.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "text/plain" in data:
                text = _tqdm_text(data[WIDGET_VIEW].get("model_id", ""), state)
                if text is not None:
                    data["text/plain"] = text
                del data[WIDGET_VIEW]


def execute(path: Path, timeout: int = 120) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in its own folder; raise HandoutError on failure."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_CurrentEnvKernels())
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
        # The kernel's own log (a notice about its local TCP transport) is noise here.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    # The kernel echoes what cells and their child processes write to stderr onto its own
    # terminal as well; the notebook keeps a copy, so keep the build's progress lines clean.
    with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        code_cells = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError) as exc:
                raise HandoutError(
                    f"{path.name}: code cell {code_cells} (cell {index} counting markdown) "
                    f"failed:\n{exc}"
                ) from None
            code_cells += 1
        client.set_widgets_metadata()  # saved widget state: tqdm bars' final text
    return nb


def render(nb: nbformat.NotebookNode, edition: str, resources: dict) -> str:
    """HTML for one edition of an executed notebook."""
    exporter = HTMLExporter(
        extra_template_basedirs=[str(TEMPLATE_DIR.parent)],
        template_name=TEMPLATE_DIR.name,
    )
    nb = copy.deepcopy(nb)
    remove = EDITIONS[edition]
    if remove:
        nb, _ = TagRemovePreprocessor(remove_cell_tags=remove, enabled=True).preprocess(nb, {})
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):  # shown open in the instructor edition
            cell.source = cell.source.replace("<details>", "<details open>", 1)
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


TIME = re.compile(r"\*\*Time:?\*\*:?\s*(.+?)(?:\.\s|\.$|\*\*|\n\n|$)", re.DOTALL)
OBJECTIVES = re.compile(r"^\*\*(?:You will learn to|Learning objectives)\b.*$", re.MULTILINE)
ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+")


def chapter_summary(nb: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """(time, objectives) from the title cell: its "**Time:**" line and its
    "**You will learn to**" (or "**Learning objectives**") list, as plain text."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    time_match = TIME.search(first)
    time_text = " ".join(time_match.group(1).split()) if time_match else ""
    objectives: list[str] = []
    heading = OBJECTIVES.search(first)
    if heading:
        for line in first[heading.end() :].lstrip("\n").splitlines():
            if ITEM.match(line):
                objectives.append(ITEM.sub("", line).strip())
            elif line.strip() and objectives and line.startswith(" "):
                objectives[-1] += " " + line.strip()  # continuation of the item
            elif objectives or line.strip():
                break
    return time_text, objectives


def _inline(text: str) -> str:
    """Markdown's `code`, **bold**, *italics* and [links](...) as escaped HTML (links as text)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    parts = text.split("`")
    return "".join(
        f"<code>{html.escape(part)}</code>"
        if i % 2
        else re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*", _emphasis, html.escape(part))
        for i, part in enumerate(parts)
    )


def _emphasis(match: re.Match) -> str:
    strong, em = match.groups()
    return f"<strong>{strong}</strong>" if strong else f"<em>{em}</em>"


def index_page(
    chapters: list[tuple[str, str, str, list[str]]], edition: str, total: str = ""
) -> str:
    """The edition's table of contents: every chapter by title, linked, with its time and
    what it teaches (both from the chapter's title cell), and the course's total time."""
    items = []
    for href, title, time_text, objectives in chapters:
        goals = "".join(f"<li>{_inline(goal)}</li>" for goal in objectives)
        items.append(
            f'  <section class="chapter">\n'
            f'    <h2><a href="{html.escape(href)}">{html.escape(title)}</a></h2>\n'
            f'    <p class="time">{html.escape(time_text)}</p>\n'
            + (f'    <ul class="goals">{goals}</ul>\n' if goals else "")
            + "  </section>"
        )
    note = (
        "Exercise solutions are left out: work them out in JupyterLab, where each exercise "
        "has a check cell."
        if edition == "learner"
        else "This edition includes the exercise solutions, marked <em>Solution</em>."
    )
    body = "\n".join(items)
    total_html = (
        f'  <p class="total">The whole course: {html.escape(total)}. Times come from what each '
        "chapter contains (reading, code, running cells, exercises); core sections alone make "
        "a shorter path through every chapter.</p>"
        if total
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Python multiprocessing, hands-on ({edition} edition)</title>
  <style>
    body {{ font-family: sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em;
           line-height: 1.5; }}
    .chapter {{ margin: 1.2em 0; break-inside: avoid; }}
    .chapter h2 {{ font-size: 1.2em; margin: 0; }}
    .time {{ margin: 0.1em 0; color: #555; }}
    .total {{ font-weight: bold; }}
    .goals {{ margin: 0.2em 0; padding-left: 1.4em; font-size: 0.92em; }}
    @media print {{
      body {{ max-width: none; margin: 0; font-size: 10.5pt; }}
      a {{ color: inherit; text-decoration: none; }}
    }}
  </style>
</head>
<body>
  <h1>Python multiprocessing, hands-on</h1>
  <p>Handouts, {edition} edition. {note}</p>
{total_html}
{body}
</body>
</html>
"""


def build(notebooks: list[Path], out: Path) -> None:
    """Execute and render every notebook; replace ``out`` only if all succeeded."""
    if not notebooks:
        raise HandoutError("no notebooks found")
    staging = Path(tempfile.mkdtemp(prefix="handouts-", dir=out.parent))
    try:
        executed, times = [], []
        total = len(notebooks)
        for number, path in enumerate(notebooks, 1):
            print(f"[{number}/{total}] {path.name} ...", end=" ", flush=True)
            start = time.perf_counter()
            try:
                nb = execute(path)
            except HandoutError:
                print("FAILED", flush=True)
                raise
            print(f"ok ({time.perf_counter() - start:.1f} s)", flush=True)
            times.append(coursetime.chapter_times(nb))
            _drop_widget_views(nb)
            rewrite_links(nb)
            try:
                convert_math(nb)
            except ValueError as exc:
                raise HandoutError(f"{path.name}: {exc}") from None
            executed.append((path.with_suffix(".html").name, notebook_title(nb, path.stem), nb))
        chapters = [(href, title, *chapter_summary(nb)) for href, title, nb in executed]
        for edition in EDITIONS:
            folder = staging / edition
            folder.mkdir()
            for i, (href, title, nb) in enumerate(executed):
                resources = {
                    "metadata": {"name": title},
                    "course_edition": edition,
                    "course_prev": _link(executed, i - 1),
                    "course_next": _link(executed, i + 1),
                }
                (folder / href).write_text(render(nb, edition, resources), encoding="utf-8")
            index = index_page(chapters, edition, coursetime.total_line(times))
            (folder / "index.html").write_text(index, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        out.chmod(0o755)  # mkdtemp made it private
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link(executed, i):
    if 0 <= i < len(executed):
        return {"href": executed[i][0], "title": executed[i][1]}
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with NN_topic.ipynb notebooks")
    parser.add_argument("--out", type=Path, default=Path("build/handouts"))
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"folder {args.folder} is not a directory")
    notebooks = sorted(args.folder.glob("[0-9][0-9]_*.ipynb"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        build(notebooks, args.out.resolve())
    except HandoutError as exc:
        print(f"\nHandouts not built: {exc}", file=sys.stderr)
        return 1
    print(
        f"Wrote {args.out}/learner/ and {args.out}/instructor/ "
        f"({len(notebooks)} chapters, {time.perf_counter() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
