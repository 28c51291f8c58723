"""Workers for chapter 01 (processes and start methods), and a way to see a child's stderr.

Every function here may run in a child process, so it lives in an importable module:
a child started with ``spawn`` or ``forkserver`` imports it by name.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from typing import Any, NamedTuple

from helpers import work
from helpers.validate import check_seconds as _check_seconds

__all__ = [
    "ProcessInfo",
    "whoami",
    "return_value",
    "raise_error",
    "exit_with",
    "nap",
    "start_a_pool",
    "DownloadProcess",
    "SpawnDownloadProcess",
    "captured_stderr",
    "IMPORTED_IN",
    "where_imported",
    "SETTING",
    "report_setting",
    "read_a_line",
    "nap_then_report",
]

# The pid of the process that imported this module: a fork server that preloaded it, or
# the process itself (chapter 01 uses it to show what set_forkserver_preload changes).
IMPORTED_IN = os.getpid()

# A module global: a parent may change it, but a spawned child imports the module afresh.
SETTING = "default"


def _check_sink(sink: Any) -> None:
    if not hasattr(sink, "put"):
        raise TypeError(f"sink must be a queue (with a put() method), got {type(sink).__name__}")


class ProcessInfo(NamedTuple):
    """Who a process is: its multiprocessing name, its pid and its parent's pid."""

    name: str
    pid: int
    parent_pid: int | None  # multiprocessing.parent_process().pid: the process that started it
    os_ppid: int  # os.getppid(): the process the operating system says is its parent


def whoami(sink: Any) -> None:
    """Put a :class:`ProcessInfo` describing the running process on ``sink`` (a queue)."""
    _check_sink(sink)
    me = multiprocessing.current_process()
    parent = multiprocessing.parent_process()
    sink.put(ProcessInfo(me.name, me.pid, parent.pid if parent else None, os.getppid()))


def return_value(value: Any) -> Any:
    """Return ``value``: a target whose return value ``Process`` throws away."""
    return value


def raise_error(message: str) -> None:
    """Raise ``ValueError(message)``: a child that fails with an exception."""
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}")
    raise ValueError(message)


def exit_with(code: Any) -> None:
    """Call ``sys.exit(code)``: a child that chooses its own exit status."""
    sys.exit(code)


def nap(seconds: float) -> None:
    """Sleep ``seconds``: a child that is busy for a while, doing nothing."""
    time.sleep(_check_seconds(seconds))


def start_a_pool(workers: int = 1) -> list[int]:
    """Start a ``Pool`` in this process and return its workers' pids.

    Run as a task of another pool, it fails: pool workers are daemonic processes, and a
    daemonic process may not have children (``AssertionError``).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    with multiprocessing.Pool(workers) as pool:
        return sorted(set(pool.map(_pid, range(workers))))


def _pid(_: Any = None) -> int:
    return os.getpid()


class DownloadProcess(multiprocessing.Process):
    """A ``Process`` subclass: ``__init__`` stores the job, ``run()`` does it in the child.

    The span of the simulated download is put on ``sink``. ``run()`` also sets
    ``self.finished``, but only on the child's copy of the object: the parent's copy
    never changes (chapter 01 shows this).
    """

    def __init__(self, url: str, sink: Any, seconds: float = 0.2):
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        _check_sink(sink)
        super().__init__(name=f"download-{url.rsplit('/', 1)[-1]}")
        self.url = url
        self.sink = sink
        self.seconds = _check_seconds(seconds)
        self.finished = False

    def run(self) -> None:
        work.fake_download(self.url, self.seconds, sink=self.sink)
        self.finished = True  # changes the child's copy only


class SpawnDownloadProcess(multiprocessing.get_context("spawn").Process, DownloadProcess):
    """:class:`DownloadProcess`, always started with ``spawn``: ``start()`` pickles it."""


def where_imported(sink: Any) -> None:
    """Put ``(IMPORTED_IN, own pid, os.getppid())`` on ``sink``: who imported this module."""
    _check_sink(sink)
    sink.put((IMPORTED_IN, os.getpid(), os.getppid()))


def report_setting(sink: Any) -> None:
    """Put the value of the module global :data:`SETTING`, as this process sees it, on ``sink``."""
    _check_sink(sink)
    sink.put(SETTING)


def read_a_line(sink: Any) -> None:
    """Try ``input()`` and put what happened on ``sink``: the line, or the exception's name."""
    _check_sink(sink)
    try:
        sink.put(("line", input()))
    except Exception as exc:  # in a child: EOFError, its stdin is os.devnull
        sink.put((type(exc).__name__, str(exc)))


def nap_then_report(seconds: float, sink: Any) -> None:
    """Put ``"sleeping"`` on ``sink``, sleep ``seconds``, then put ``"cleaned up"`` in ``finally``.

    Used to show which ways of stopping a process let ``finally`` blocks run.
    """
    _check_sink(sink)
    seconds = _check_seconds(seconds)
    try:
        sink.put("sleeping")
        time.sleep(seconds)
    finally:
        sink.put("cleaned up")


class captured_stderr:
    """Send file descriptor 2 (stderr) to a temporary file for the ``with`` block.

    Child processes started inside the block with ``fork`` or ``spawn`` inherit that
    file descriptor, so what they print to stderr (a traceback, an error message) is
    collected in ``.text`` after the block instead of appearing in the notebook.
    A ``forkserver`` child inherits the fork server's stderr instead, so use a spawn
    context (``multiprocessing.get_context("spawn")``) for children whose stderr you
    want to capture.
    """

    def __init__(self) -> None:
        self.text = ""
        self._file: Any = None
        self._saved_fd: int | None = None

    def __enter__(self) -> captured_stderr:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved_fd = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
