"""Unit tests for helpers.processes and helpers.work.usable_cpus (chapters 00 and 01)."""

import multiprocessing
import os
import signal

import pytest

from helpers import processes, timeline
from helpers.work import usable_cpus


@pytest.fixture(params=multiprocessing.get_all_start_methods())
def ctx(request):
    return multiprocessing.get_context(request.param)


def test_usable_cpus_is_a_positive_int_within_cpu_count():
    n = usable_cpus()
    assert isinstance(n, int) and 1 <= n <= (os.cpu_count() or n)
    if hasattr(os, "sched_getaffinity"):  # never more than the affinity mask allows
        assert n <= len(os.sched_getaffinity(0))


def test_whoami_reports_child_and_parent(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=processes.whoami, args=(q,), name="probe")
    p.start()
    info = q.get(timeout=30)
    p.join(timeout=30)
    assert info.name == "probe" and info.pid == p.pid
    assert info.parent_pid == os.getpid()
    if ctx.get_start_method() != "forkserver":
        assert info.os_ppid == os.getpid()


def test_whoami_in_main_process_has_no_parent():
    items = []

    class Sink:
        put = items.append

    processes.whoami(Sink())
    assert items[0].parent_pid is None and items[0].pid == os.getpid()


@pytest.mark.parametrize(
    "target, args, code",
    [
        (processes.return_value, (42,), 0),
        (processes.raise_error, ("boom",), 1),
        (processes.exit_with, (3,), 3),
        (processes.exit_with, (None,), 0),
        (processes.exit_with, ("bye",), 1),
    ],
)
def test_exit_codes(target, args, code):
    ctx = multiprocessing.get_context("spawn")
    with processes.captured_stderr() as err:
        p = ctx.Process(target=target, args=args)
        p.start()
        p.join(timeout=30)
    assert p.exitcode == code
    if target is processes.raise_error:
        assert "ValueError: boom" in err.text
    if args == ("bye",):
        assert "bye" in err.text


def test_terminate_gives_minus_sigterm():
    p = multiprocessing.get_context("spawn").Process(target=processes.nap, args=(30,))
    p.start()
    p.terminate()
    p.join(timeout=30)
    assert p.exitcode == -signal.SIGTERM


def test_captured_stderr_collects_fd_2_and_restores_it():
    with processes.captured_stderr() as err:
        os.write(2, b"hello on fd 2\n")
    assert err.text == "hello on fd 2\n"
    os.fstat(2)  # fd 2 is still open after the block


def test_download_process_subclass():
    q = multiprocessing.Queue()
    p = processes.DownloadProcess("https://example.org/z", q, seconds=0.05)
    assert p.name == "download-z"
    p.start()
    span = q.get(timeout=30)
    p.join(timeout=30)
    assert isinstance(span, timeline.Span) and span.label == "z" and span.pid == p.pid
    assert p.exitcode == 0 and p.finished is False  # the child's copy changed, not ours


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: processes.nap(-1), ValueError),
        (lambda: processes.nap("1"), TypeError),
        (lambda: processes.raise_error(3), TypeError),
        (lambda: processes.whoami([]), TypeError),
        (lambda: processes.DownloadProcess(3, multiprocessing.SimpleQueue()), TypeError),
        (lambda: processes.DownloadProcess("u", object()), TypeError),
        (lambda: processes.DownloadProcess("u", multiprocessing.SimpleQueue(), -1), ValueError),
        (lambda: processes.where_imported(None), TypeError),
        (lambda: processes.report_setting(None), TypeError),
        (lambda: processes.read_a_line(None), TypeError),
        (lambda: processes.nap_then_report(1, None), TypeError),
        (lambda: processes.nap_then_report(-1, multiprocessing.SimpleQueue()), ValueError),
    ],
)
def test_bad_arguments_are_rejected(call, error):
    with pytest.raises(error):
        call()


def test_start_a_pool_works_in_a_normal_process_but_not_in_a_pool_worker():
    assert len(processes.start_a_pool(1)) == 1
    with pytest.raises(ValueError, match="workers"):
        processes.start_a_pool(0)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        with pytest.raises(AssertionError, match="daemonic processes are not allowed"):
            pool.apply(processes.start_a_pool, (1,))


def test_where_imported_tells_a_preloading_server_from_the_child():
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=processes.where_imported, args=(q,))
    p.start()
    imported_in, pid, ppid = q.get(timeout=30)
    p.join(timeout=30)
    assert imported_in == pid == p.pid and ppid == os.getpid()  # spawn: the child imports it
    if "fork" in multiprocessing.get_all_start_methods():
        fork = multiprocessing.get_context("fork")
        q = fork.Queue()
        p = fork.Process(target=processes.where_imported, args=(q,))
        p.start()
        imported_in, pid, _ = q.get(timeout=30)
        p.join(timeout=30)
        assert imported_in == processes.IMPORTED_IN != pid  # fork: a copy of ours


def test_a_spawned_child_sees_the_original_setting_and_an_empty_stdin(monkeypatch):
    monkeypatch.setattr(processes, "SETTING", "changed")
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    children = [
        ctx.Process(target=processes.report_setting, args=(q,)),
        ctx.Process(target=processes.read_a_line, args=(q,)),
    ]
    for p in children:
        p.start()
    got = [q.get(timeout=30) for _ in children]
    for p in children:
        p.join(timeout=30)
    assert "default" in got and ("EOFError", "EOF when reading a line") in got


def test_nap_then_report_cleans_up_unless_terminated():
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    quick = ctx.Process(target=processes.nap_then_report, args=(0, q))
    quick.start()
    assert [q.get(timeout=30), q.get(timeout=30)] == ["sleeping", "cleaned up"]
    quick.join(timeout=30)
    stuck = ctx.Process(target=processes.nap_then_report, args=(30, q))
    stuck.start()
    assert q.get(timeout=30) == "sleeping"
    stuck.terminate()
    stuck.join(timeout=30)
    assert stuck.exitcode == -signal.SIGTERM and q.empty()


def test_spawn_download_process_pickles_its_attributes():
    q = multiprocessing.get_context("spawn").Queue()
    p = processes.SpawnDownloadProcess("https://example.org/y", q, seconds=0.05)
    p.unpicklable = lambda: None
    with pytest.raises(Exception, match="pickle"):
        p.start()
    assert p.pid is None
    del p.unpicklable
    p.start()
    assert q.get(timeout=30).pid == p.pid
    p.join(timeout=30)
    assert p.exitcode == 0
