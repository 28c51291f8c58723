"""Record when work ran, in which process and thread, and draw it as a Gantt chart.

Spans use ``time.perf_counter()``, a monotonic clock that is system-wide on Linux,
macOS and (since Python 3.10) Windows, so spans recorded in different processes can
be drawn on one time axis.

Typical use in a worker (any of ``Process``, ``Pool``, ``ProcessPoolExecutor`` or a
thread)::

    def work(label, seconds):
        with timeline.record(label) as rec:
            time.sleep(seconds)
        return rec.span            # or pass sink=queue_or_list to deliver it

and in the notebook::

    t0 = timeline.now()
    spans = pool.starmap(work, ...)
    timeline.plot_timeline(spans, origin=t0, title="2 workers")
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "Span",
    "now",
    "record",
    "make_span",
    "max_overlap",
    "total_time",
    "plot_timeline",
    "plot_comparison",
]


def now() -> float:
    """Return the current time on the clock all spans use (``time.perf_counter``)."""
    return time.perf_counter()


class Span(NamedTuple):
    """One piece of work: what it was, where it ran and when (perf_counter seconds)."""

    label: str
    pid: int
    process: str
    thread: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def worker(self) -> str:
        """The row this span is drawn in: process name and pid, plus the thread if not main."""
        name = f"{self.process} ({self.pid})"
        if self.thread != "MainThread":
            name += f" / {self.thread}"
        return name


def make_span(label: str, start: float, end: float) -> Span:
    """Build a span for work done in *this* process and thread between start and end."""
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if end < start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    import os

    return Span(
        label,
        os.getpid(),
        multiprocessing.current_process().name,
        threading.current_thread().name,
        float(start),
        float(end),
    )


class record:
    """Context manager that times its block and produces a :class:`Span`.

    After the block, the span is in ``.span``. If ``sink`` is given, the span is also
    delivered to it: ``sink.put(span)`` for queues, ``sink.append(span)`` for lists
    (plain lists for threads, ``Manager().list()`` for processes).
    The span is recorded even if the block raises.
    """

    def __init__(self, label: str, sink: Any = None):
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, got {type(label).__name__}")
        if sink is not None and not (hasattr(sink, "put") or hasattr(sink, "append")):
            raise TypeError(f"sink must have a put() or append() method, got {type(sink).__name__}")
        self.label = label
        self.sink = sink
        self.span: Span | None = None
        self._start: float | None = None

    def __enter__(self) -> record:
        self._start = now()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.span = make_span(self.label, self._start, now())
        if self.sink is not None:
            if hasattr(self.sink, "put"):
                self.sink.put(self.span)
            else:
                self.sink.append(self.span)


def _check_spans(spans: Any, argname: str = "spans") -> list[Span]:
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise TypeError(f"{argname} must be an iterable of Span, got {type(spans).__name__}")
    spans = list(spans)
    if not spans:
        raise ValueError(f"{argname} is empty: record at least one span to draw")
    for i, s in enumerate(spans):
        if not isinstance(s, Span):
            raise TypeError(
                f"{argname}[{i}] must be a helpers.timeline.Span, got {type(s).__name__}"
            )
    return spans


def total_time(spans: Iterable[Span], origin: float | None = None) -> float:
    """Seconds from ``origin`` (default: the earliest start) to the latest end."""
    spans = _check_spans(spans)
    first = min(s.start for s in spans) if origin is None else _check_origin(origin, spans)
    return max(s.end for s in spans) - first


def max_overlap(spans: Iterable[Span]) -> int:
    """The largest number of spans running at the same moment.

    A span that ends exactly when another starts does not overlap it.
    """
    spans = _check_spans(spans)
    events = [(s.start, 1) for s in spans] + [(s.end, -1) for s in spans]
    events.sort(key=lambda e: (e[0], e[1]))  # ends (-1) sort before starts at the same time
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def _check_origin(origin: Any, spans: Sequence[Span]) -> float:
    if isinstance(origin, bool) or not isinstance(origin, (int, float)):
        raise TypeError(f"origin must be a perf_counter time in seconds, got {origin!r}")
    if origin > min(s.start for s in spans):
        raise ValueError(
            "origin must not be after the first span's start; "
            "take it with timeline.now() before starting the work"
        )
    return float(origin)


def plot_timeline(
    spans: Iterable[Span],
    *,
    origin: float | None = None,
    title: str | None = None,
    ax: Any = None,
    show_total: bool = True,
    colors: Mapping[str, Any] | None = None,
) -> Any:
    """Draw spans as a Gantt chart: one row per process (or thread), one labelled bar per span.

    ``origin`` is time zero on the axis (default: the earliest start); pass the time you
    started the work (``timeline.now()``) so start-up costs show as a gap. The title gets
    the total time from origin to the last end unless ``show_total=False``. ``colors`` maps
    labels to matplotlib colours (default: one per label, in order of first start).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    spans = _check_spans(spans)
    zero = min(s.start for s in spans) if origin is None else _check_origin(origin, spans)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    if ax is None:
        rows = len({s.worker for s in spans})
        _, ax = plt.subplots(figsize=(9, 0.9 + 0.55 * rows), layout="constrained")

    # Rows in order of first activity, top to bottom.
    order: dict[str, int] = {}
    for s in sorted(spans, key=lambda s: s.start):
        order.setdefault(s.worker, len(order))
    if colors is not None and not isinstance(colors, Mapping):
        raise TypeError(f"colors must be a mapping of label -> colour, got {type(colors).__name__}")
    color_of = {**_label_colors(spans), **(colors or {})}

    for s in spans:
        row = order[s.worker]
        left, width = s.start - zero, s.duration
        (bar,) = ax.barh(
            row,
            width,
            left=left,
            height=0.6,
            color=color_of[s.label],
            edgecolor="black",
            linewidth=0.5,
        )
        ax.add_artist(_bar_label(bar, left + width / 2, row, s.label))

    ax.set_yticks(range(len(order)), list(order))
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds from start")
    ax.grid(axis="x", alpha=0.3)
    heading = title or ""
    if show_total:
        total = max(s.end for s in spans) - zero
        heading = f"{heading}: {total:.2f} s" if heading else f"total {total:.2f} s"
    if heading:
        ax.set_title(heading)
    return ax


def _label_colors(*runs: list[Span]) -> dict[str, Any]:
    """One colour per label, in order of first start (run by run)."""
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10").colors
    color_of: dict[str, Any] = {}
    for spans in runs:
        for s in sorted(spans, key=lambda s: s.start):
            color_of.setdefault(s.label, palette[len(color_of) % len(palette)])
    return color_of


def _bar_label(bar: Any, x: float, y: float, text: str) -> Any:
    """A bar's label that is drawn only when it fits inside the bar.

    Bars of very short tasks would otherwise carry a smudge of overprinted text.
    ``shown`` tells whether the last draw showed it.
    """
    from matplotlib.text import Text

    class BarLabel(Text):
        shown = False

        def draw(self, renderer: Any) -> None:
            fits = self.get_window_extent(renderer).width <= bar.get_window_extent(renderer).width
            self.shown = fits
            if fits:
                super().draw(renderer)

    return BarLabel(x, y, text, ha="center", va="center", fontsize=8)


def plot_comparison(
    runs: Mapping[str, Iterable[Span]],
    *,
    origins: Mapping[str, float] | None = None,
) -> Any:
    """Draw several runs side by side on a shared time axis, the total time in each title.

    ``runs`` maps a title ("sequential", "2 processes", ...) to its spans; ``origins``
    optionally maps the same titles to each run's start time. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a mapping of title -> spans, got {type(runs).__name__}")
    if not runs:
        raise ValueError("runs is empty: give at least one title -> spans")
    origins = dict(origins or {})
    unknown = set(origins) - set(runs)
    if unknown:
        raise ValueError(f"origins has titles that are not in runs: {sorted(unknown)}")
    checked = {title: _check_spans(spans, f"runs[{title!r}]") for title, spans in runs.items()}
    rows = max(len({s.worker for s in spans}) for spans in checked.values())
    fig, axes = plt.subplots(
        1,
        len(checked),
        figsize=(5.5 * len(checked), 1.2 + 0.55 * rows),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    colors = _label_colors(*checked.values())  # a label keeps its colour in every panel
    for ax, (title, spans) in zip(axes[0], checked.items(), strict=True):
        plot_timeline(spans, origin=origins.get(title), title=title, ax=ax, colors=colors)
    # The axes share x: make the shared range fit the longest run, not the first one drawn.
    longest = max(total_time(spans, origins.get(title)) for title, spans in checked.items())
    axes[0][0].set_xlim(0, longest * 1.02)
    return fig
