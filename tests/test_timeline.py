"""helpers.timeline: spans recorded anywhere line up on one clock, and charts draw them."""

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import timeline, work  # noqa: E402
from helpers.timeline import Span  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def span(label, start, end, pid=1, process="P", thread="MainThread"):
    return Span(label, pid, process, thread, start, end)


def test_record_measures_the_block_in_this_process():
    before = timeline.now()
    with timeline.record("nap") as rec:
        time.sleep(0.05)
    after = timeline.now()
    s = rec.span
    assert s.label == "nap" and s.process == "MainProcess" and s.thread == "MainThread"
    assert before <= s.start < s.end <= after
    assert 0.04 < s.duration < 1


def test_record_delivers_to_list_and_queue_sinks_even_when_the_block_raises():
    spans = []
    with pytest.raises(ZeroDivisionError), timeline.record("boom", sink=spans):
        _ = 1 / 0
    assert [s.label for s in spans] == ["boom"]

    import queue

    q = queue.Queue()
    with timeline.record("q", sink=q):
        pass
    assert q.get_nowait().label == "q"


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_spans_from_a_child_process_are_on_the_parents_clock(method):
    ctx = multiprocessing.get_context(method)
    q = ctx.Queue()
    before = timeline.now()
    p = ctx.Process(target=work.fake_download, args=(work.URLS[0], 0.05, q))
    p.start()
    s = q.get(timeout=30)
    p.join(timeout=30)
    after = timeline.now()
    assert p.exitcode == 0
    assert s.pid == p.pid and s.pid != multiprocessing.current_process().pid
    assert before < s.start < s.end < after


def test_spans_from_pool_executor_and_threads():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool_spans = pool.starmap(work.timed_busy_sum, [("a", 1000), ("b", 1000)])
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        ex_spans = list(ex.map(work.fake_download, work.URLS, [0.01] * 3))
    thread_spans = []
    threads = [
        threading.Thread(target=work.fake_download, args=(u, 0.01, thread_spans), name=f"T{i}")
        for i, u in enumerate(work.URLS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {s.label for s in pool_spans} == {"a", "b"}
    assert all(s.process.startswith("SpawnPoolWorker") for s in pool_spans)
    assert {s.label for s in ex_spans} == {"a", "b", "c"}
    assert {s.thread for s in thread_spans} == {"T0", "T1", "T2"}
    assert all(s.worker.endswith(s.thread) for s in thread_spans)


def test_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match="label"):
        timeline.record(3)
    with pytest.raises(TypeError, match="sink"):
        timeline.record("x", sink=object())
    with pytest.raises(ValueError, match="spans is empty"):
        timeline.plot_timeline([])
    with pytest.raises(TypeError, match="spans must be an iterable"):
        timeline.plot_timeline(5)
    with pytest.raises(TypeError, match=r"spans\[1\]"):
        timeline.plot_timeline([span("a", 0, 1), (0, 1)])
    with pytest.raises(ValueError, match="origin"):
        timeline.plot_timeline([span("a", 1, 2)], origin=1.5)
    with pytest.raises(TypeError, match="origin"):
        timeline.total_time([span("a", 1, 2)], origin="0")
    with pytest.raises(ValueError, match="end"):
        timeline.make_span("a", 2.0, 1.0)
    with pytest.raises(TypeError, match="runs"):
        timeline.plot_comparison([span("a", 0, 1)])
    with pytest.raises(ValueError, match="origins"):
        timeline.plot_comparison({"a": [span("a", 0, 1)]}, origins={"b": 0})


def test_max_overlap_and_total_time():
    spans = [span("a", 0, 2), span("b", 1, 3), span("c", 2, 4), span("d", 2.5, 2.6)]
    assert timeline.max_overlap(spans) == 3  # b, c and d at 2.55; a ends as c starts
    assert timeline.max_overlap([span("a", 0, 1), span("b", 1, 2)]) == 1
    assert timeline.total_time(spans) == 4
    assert timeline.total_time(spans, origin=-1) == 5


def test_plot_timeline_draws_one_labelled_bar_per_span_in_one_row_per_worker():
    spans = [
        span("a", 10.0, 10.5, pid=1, process="W1"),
        span("b", 10.5, 11.0, pid=1, process="W1"),
        span("c", 10.2, 10.9, pid=2, process="W2"),
        span("d", 10.1, 10.3, pid=2, process="W2", thread="T1"),
    ]
    ax = timeline.plot_timeline(spans, origin=9.5, title="demo")
    bars = ax.patches
    assert len(bars) == 4
    lefts_widths = sorted((round(b.get_x(), 6), round(b.get_width(), 6)) for b in bars)
    assert lefts_widths == [(0.5, 0.5), (0.6, 0.2), (0.7, 0.7), (1.0, 0.5)]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["W1 (1)", "W2 (2) / T1", "W2 (2)"]  # in order of first activity
    # bars of one worker share a row
    row_of = {round(b.get_x(), 6): b.get_y() + b.get_height() / 2 for b in bars}
    assert row_of[0.5] == row_of[1.0] == 0
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b", "c", "d"]
    assert ax.get_title() == "demo: 1.50 s"
    assert ax.get_xlabel() == "seconds from start"


def test_bar_labels_are_drawn_only_where_they_fit():
    spans = [span("a long label", 0.0, 1.0), span("tiny", 1.0, 1.001)]
    ax = timeline.plot_timeline(spans)
    ax.figure.canvas.draw()
    shown = {t.get_text(): t.shown for t in ax.texts}
    assert shown == {"a long label": True, "tiny": False}


def test_plot_comparison_shares_the_time_axis_and_titles_each_run_with_its_total():
    seq = [span("a", 0, 1), span("b", 1, 2)]
    par = [span("a", 5, 6, pid=1), span("b", 5, 6, pid=2)]
    fig = timeline.plot_comparison({"sequential": seq, "parallel": par})
    left, right = fig.axes
    assert left.get_title() == "sequential: 2.00 s"
    assert right.get_title() == "parallel: 1.00 s"
    assert left.get_xlim() == right.get_xlim()
    assert left.get_xlim()[1] >= 2  # the longer run fits, though it is drawn first here
    fig = timeline.plot_comparison({"parallel": par, "sequential": seq})
    assert fig.axes[0].get_xlim()[1] >= 2  # ... and when it is drawn last
    assert len(left.patches) == 2 and len(right.patches) == 2
    assert len(right.get_yticklabels()) == 2


def test_a_label_keeps_its_colour_in_every_panel():
    first = [span("a", 0, 1), span("b", 1, 2)]
    second = [span("b", 5, 6, pid=1), span("a", 5.5, 6, pid=2)]  # b starts first here
    left, right = timeline.plot_comparison({"one": first, "two": second}).axes

    def color_by_label(ax):
        bars = sorted(ax.patches, key=lambda b: b.get_x())
        texts = sorted(ax.texts, key=lambda t: t.get_position()[0])
        return {t.get_text(): b.get_facecolor() for t, b in zip(texts, bars, strict=True)}

    assert color_by_label(left) == color_by_label(right)
    assert color_by_label(left)["a"] != color_by_label(left)["b"]
    with pytest.raises(TypeError, match="colors"):
        timeline.plot_timeline(first, colors=["red"])
