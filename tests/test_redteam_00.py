"""Red team for chapter 00's exercise (download, then parse): wrong answers and odd right ones.

Each case runs the real check exactly as the notebook's check cell calls it; a wrong answer
must get ExerciseFailed, a right one must pass.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.welcome import check_download_and_parse

# ---------------------------------------------------------------- wrong answers


def serial_loop(urls, download, parse):
    return [parse(download(url)) for url in urls]


def threads_for_both(urls, download, parse):
    with ThreadPoolExecutor(max_workers=4) as ex:
        pages = list(ex.map(download, urls))
        return list(ex.map(parse, pages))


def processes_for_both(urls, download, parse):
    with ProcessPoolExecutor(max_workers=2) as ex:
        pages = list(ex.map(download, urls))
        return list(ex.map(parse, pages))


def one_worker_each(urls, download, parse):
    with ThreadPoolExecutor(max_workers=1) as tex:
        pages = list(tex.map(download, urls))
    with ProcessPoolExecutor(max_workers=1) as pex:
        return list(pex.map(parse, pages))


def threads_then_serial_parse(urls, download, parse):
    with ThreadPoolExecutor(max_workers=4) as ex:
        pages = list(ex.map(download, urls))
    return [parse(page) for page in pages]


def serial_download_then_processes(urls, download, parse):
    pages = [download(url) for url in urls]
    with ProcessPoolExecutor(max_workers=2) as ex:
        return list(ex.map(parse, pages))


def swapped_halves(urls, download, parse):
    with ProcessPoolExecutor(max_workers=2) as pex:
        pages = list(pex.map(download, urls))
    with ThreadPoolExecutor(max_workers=2) as tex:
        return list(tex.map(parse, pages))


_leaked = []


def never_shuts_down(urls, download, parse):
    tex = ThreadPoolExecutor(max_workers=4)
    pex = ProcessPoolExecutor(max_workers=2)
    _leaked.extend([tex, pex])
    pages = list(tex.map(download, urls))
    return list(pex.map(parse, pages))


def shutdown_no_wait(urls, download, parse):
    tex = ThreadPoolExecutor(max_workers=4)
    pex = ProcessPoolExecutor(max_workers=2)
    _leaked.extend([tex, pex])
    pages = list(tex.map(download, urls))
    result = list(pex.map(parse, pages))
    tex.shutdown(wait=False)
    pex.shutdown(wait=False)
    return result


def threadpool_never_closed(urls, download, parse):  # its 4 threads outlive the call
    tp = multiprocessing.pool.ThreadPool(4)
    _leaked.append(tp)
    pages = tp.map(download, urls)
    with ProcessPoolExecutor(max_workers=2) as pex:
        return list(pex.map(parse, pages))


def completion_order(urls, download, parse):
    with ThreadPoolExecutor(max_workers=4) as tex, ProcessPoolExecutor(max_workers=2) as pex:
        pages = [f.result() for f in as_completed([tex.submit(download, u) for u in urls])]
        return [f.result() for f in as_completed([pex.submit(parse, p) for p in pages])]


def first_three_only(urls, download, parse):  # hard-coded for the size the check might use
    urls = list(urls)[:3]
    with ThreadPoolExecutor(max_workers=3) as tex, ProcessPoolExecutor(max_workers=2) as pex:
        pages = list(tex.map(download, urls))
        return list(pex.map(parse, pages))


def crashes_on_empty(urls, download, parse):
    with ThreadPoolExecutor(max_workers=len(urls)) as tex:  # ValueError when urls is empty
        pages = list(tex.map(download, urls))
    with ProcessPoolExecutor(max_workers=min(2, len(urls))) as pex:
        return list(pex.map(parse, pages))


def dedups_urls(urls, download, parse):
    unique = list(dict.fromkeys(urls))
    with ThreadPoolExecutor(max_workers=4) as tex, ProcessPoolExecutor(max_workers=2) as pex:
        pages = list(tex.map(download, unique))
        return list(pex.map(parse, pages))


def parse_in_threads_of_pool(urls, download, parse):  # "workers" but parse under the GIL
    with multiprocessing.pool.ThreadPool(4) as tp:
        return tp.map(lambda u: parse(download(u)), urls)


# ---------------------------------------------------------------- right answers


def pipelined(urls, download, parse):
    with ThreadPoolExecutor(max_workers=4) as tex, ProcessPoolExecutor(max_workers=2) as pex:
        parsed = [pex.submit(parse, f.result()) for f in [tex.submit(download, u) for u in urls]]
        return [f.result() for f in parsed]


def mp_pools(urls, download, parse):
    with multiprocessing.pool.ThreadPool(3) as tp:
        pages = tp.map(download, urls)
    pp = multiprocessing.Pool(2)
    try:
        return pp.map(parse, pages)
    finally:
        pp.close()
        pp.join()


def raw_threads_and_spawn(urls, download, parse):
    urls = list(urls)
    pages = [None] * len(urls)

    def fetch(i):
        pages[i] = download(urls[i])

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pex:
        return list(pex.map(parse, pages, chunksize=1))


def as_completed_reordered(urls, download, parse):
    urls = list(urls)
    with ThreadPoolExecutor(max_workers=4) as tex, ProcessPoolExecutor(max_workers=2) as pex:
        downloads = {tex.submit(download, u): i for i, u in enumerate(urls)}
        parses = {}
        for f in as_completed(downloads):
            parses[downloads[f]] = pex.submit(parse, f.result())
        return [parses[i].result() for i in range(len(urls))]


WRONG = {
    "serial-loop": serial_loop,
    "threads-for-both": threads_for_both,
    "processes-for-both": processes_for_both,
    "one-worker-each": one_worker_each,
    "threads-then-serial-parse": threads_then_serial_parse,
    "serial-download-then-processes": serial_download_then_processes,
    "swapped-halves": swapped_halves,
    "never-shuts-down": never_shuts_down,
    "shutdown-no-wait": shutdown_no_wait,
    "threadpool-never-closed": threadpool_never_closed,
    "completion-order": completion_order,
    "first-three-only": first_three_only,
    "crashes-on-empty": crashes_on_empty,
    "dedups-urls": dedups_urls,
    "threadpool-lambda-parse": parse_in_threads_of_pool,
}
RIGHT = {
    "pipelined-submit": pipelined,
    "mp-threadpool-and-pool": mp_pools,
    "raw-threads-spawn-executor": raw_threads_and_spawn,
    "as-completed-reordered": as_completed_reordered,
}


@pytest.fixture(autouse=True)
def _clean_up():
    yield
    for obj in _leaked:
        if hasattr(obj, "terminate"):
            obj.terminate()
            obj.join()
        else:
            obj.shutdown(wait=True, cancel_futures=True)
    _leaked.clear()
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(10)


# Known gap: shutdown(wait=False) leaves workers that end a few milliseconds later on their
# own. The check looks right at return; on an idle machine they can already be gone.
RACY = {"shutdown-no-wait"}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            answer,
            marks=pytest.mark.xfail(
                reason="the workers of shutdown(wait=False) may be gone before the check looks",
                strict=False,
            ),
        )
        if name in RACY
        else answer
        for name, answer in WRONG.items()
    ],
    ids=list(WRONG),
)
def test_wrong_answer_rejected(answer):
    t = time.perf_counter()
    with pytest.raises(ExerciseFailed):
        check_download_and_parse(answer)
    assert time.perf_counter() - t < 20


@pytest.mark.parametrize("answer", list(RIGHT.values()), ids=list(RIGHT))
def test_right_answer_accepted(answer):
    check_download_and_parse(answer)
