"""Chapter 12's job: measure every Python file of a code base with ``ast``, in parallel.

- :func:`analyse_file` is the worker: one file in, one small record (a dict) out, or a
  record with the error that stopped it. It never raises for a bad file.
- :func:`python_files` lists the files of a folder; :func:`largest_first` orders them.
- :func:`run_engine` runs the worker on ``Pool``, ``concurrent.futures``, joblib or Dask
  and yields records as they finish; :func:`run_with_time_limit` gives each file a time
  limit and replaces a worker that is stuck.
- :class:`ResultStore` appends records to a JSON-lines file, so a stopped run resumes.
- ``python -m helpers.capstone PATH`` (``__main__.py``) is the same job as a script.
"""

from __future__ import annotations

import ast
import errno
import json
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from helpers import timeline
from helpers.pitfalls import ignore_sigint
from helpers.validate import check_count, check_seconds

__all__ = [
    "ENGINES",
    "ResultStore",
    "analyse_file",
    "analyse_and_log",
    "largest_first",
    "python_files",
    "run_engine",
    "run_with_time_limit",
    "summary_table",
    "timed_analyse",
]

ENGINES = ("pool", "futures", "joblib", "dask")
SKIPPED_FOLDERS = {"site-packages", "dist-packages", "__pycache__", "node_modules"}
# Nodes that add a way through the code: the "complexity" figure counts them.
BRANCHES = (
    ast.If,
    ast.IfExp,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ExceptHandler,
    ast.With,
    ast.AsyncWith,
    ast.BoolOp,
    ast.comprehension,
    ast.Assert,
    ast.match_case,
)
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _check_path(path: Any, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or a path, got {type(path).__name__}")
    return Path(path)


def python_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every ``.py`` file under ``root``, sorted by path (``[root]`` if it is a file).

    Skips hidden folders (``.git``, ``.venv``, ...), ``__pycache__`` and installed
    packages (``site-packages``). Raises OSError (``FileNotFoundError``,
    ``PermissionError``, ...) if ``root`` or a folder under it can't be read.
    """
    root = _check_path(root, "root")
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(root))

    def cannot_read(error: OSError) -> None:
        raise error

    found = []
    for folder, subfolders, files in os.walk(root, onerror=cannot_read):
        subfolders[:] = [
            s for s in subfolders if not s.startswith(".") and s not in SKIPPED_FOLDERS
        ]
        found.extend(Path(folder, f) for f in files if f.endswith(".py"))
    return sorted(found)


def largest_first(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The paths, biggest file first (ties by path), so no big file is left for the end."""
    checked = [_check_path(p, "paths[...]") for p in paths]
    return sorted(checked, key=lambda p: (-p.stat().st_size, str(p)))


def analyse_file(path: str | os.PathLike[str], *, stall_on: str | None = None) -> dict[str, Any]:
    """Measure one Python file; return a record (a dict that JSON can store).

    Keys: ``path``, ``lines``, ``functions``, ``classes``, ``depth`` (deepest nesting of
    function and class definitions), ``complexity`` (1 + the branches: ``if``, loops,
    ``except``, ``and``/``or``, ...), ``documented`` (share of functions and classes with a
    docstring) and ``imports`` (top-level modules imported, sorted). A file that can't be
    read or parsed gives ``{"path": ..., "error": "SyntaxError: ..."}`` instead.

    ``stall_on`` is for demonstrations only: a file with that name never finishes,
    a stand-in for an input that makes a real parser run forever.
    """
    path = _check_path(path)
    if stall_on is not None and path.name == stall_on:
        while True:
            time.sleep(0.1)
    try:
        source = path.read_bytes()
        with warnings.catch_warnings():  # the file's own warnings (invalid escapes, ...)
            warnings.simplefilter("ignore")  # are not ours to print
            tree = ast.parse(source, filename=str(path))  # bytes: honours the coding line
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError) as exc:
        message = str(exc)
        if isinstance(exc, SyntaxError):  # its str() repeats the path
            message = f"{exc.msg} (line {exc.lineno})"
        return {"path": str(path), "error": f"{type(exc).__name__}: {message}"}
    functions = classes = documented = branches = depth = 0
    imports = set()
    todo = [(tree, 0)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, DEFINITIONS):
            level += 1
            depth = max(depth, level)
            if isinstance(node, ast.ClassDef):
                classes += 1
            else:
                functions += 1
            documented += ast.get_docstring(node, clean=False) is not None
        elif isinstance(node, BRANCHES):
            branches += 1
        elif isinstance(node, ast.Import):
            imports.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imports.add(node.module.partition(".")[0])
        todo.extend((child, level) for child in ast.iter_child_nodes(node))
    defined = functions + classes
    return {
        "path": str(path),
        "lines": source.count(b"\n") + (not source.endswith(b"\n") and bool(source)),
        "functions": functions,
        "classes": classes,
        "depth": depth,
        "complexity": 1 + branches,
        "documented": round(documented / defined, 3) if defined else None,
        "imports": sorted(imports),
    }


def analyse_and_log(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`analyse_file`, plus a log record: WARNING for a failed file, DEBUG otherwise."""
    record = analyse_file(path)
    log = logging.getLogger("capstone")
    if "error" in record:
        log.warning("%s: %s", record["path"], record["error"])
    else:
        log.debug("%s: %d lines", record["path"], record["lines"])
    return record


def timed_analyse(path: str | os.PathLike[str]) -> tuple[dict[str, Any], timeline.Span]:
    """:func:`analyse_file` and its span for the timeline, labelled by the file's size."""
    size = _check_path(path).stat().st_size
    label = "over 100 kB" if size > 100_000 else "smaller"
    with timeline.record(label) as rec:
        record = analyse_file(path)
    return record, rec.span


class ResultStore:
    """Records in a JSON-lines file: one line per finished file, appended as it arrives.

    ``load()`` reads what an earlier run finished (a last line cut off by a crash is
    ignored); ``append(record)`` writes one line and flushes it, so a record is on disk
    (in the operating system's hands) before the next one is handled. One process writes.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = _check_path(path)
        self._file: Any = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The records stored so far, by path (the last one wins if a path is repeated)."""
        done: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return done
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off when the writer was killed
                if isinstance(record, dict) and isinstance(record.get("path"), str):
                    done[record["path"]] = record
        return done

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line, and flush it."""
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise TypeError("record must be a dict with a 'path' str")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_off = False  # a run that was killed may have left half a line
            if self.path.exists() and self.path.stat().st_size > 0:
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    cut_off = f.read(1) != b"\n"
            self._file = self.path.open("a", encoding="utf-8")
            if cut_off:
                self._file.write("\n")  # so the next record starts on a line of its own
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_run_args(paths: Any, workers: Any, chunksize: Any = 1) -> list[str]:
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Iterable):
        raise TypeError(f"paths must be a list of paths, got {type(paths).__name__}")
    check_count(workers, "workers", minimum=1)
    check_count(chunksize, "chunksize", minimum=1)
    return [str(_check_path(p, "paths[...]")) for p in paths]


def run_engine(
    paths: Iterable[str | os.PathLike[str]],
    engine: str = "pool",
    workers: int = 2,
    chunksize: int = 1,
) -> Iterator[dict[str, Any]]:
    """Yield :func:`analyse_file`'s record for every path, in the order they finish.

    ``engine`` is ``"pool"`` (``multiprocessing.Pool.imap_unordered``), ``"futures"``
    (``ProcessPoolExecutor`` + ``as_completed``), ``"joblib"`` (``Parallel``, unordered)
    or ``"dask"`` (a ``LocalCluster`` of ``workers`` processes). Workers are started
    ignoring Ctrl-C; when the caller stops early (Ctrl-C, ``break``), they are stopped.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    paths = _check_run_args(paths, workers, chunksize)
    if not paths:
        return
    yield from globals()[f"_run_{engine}"](paths, workers, chunksize)


def _started_ignoring_sigint(start: Any) -> Any:
    """Call ``start()`` with SIGINT ignored, so workers never see a Ctrl-C while starting."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return start()
    original = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return start()
    finally:
        signal.signal(signal.SIGINT, original)


def _run_pool(paths: list[str], workers: int, chunksize: int) -> Iterator[dict[str, Any]]:
    pool = _started_ignoring_sigint(
        lambda: multiprocessing.Pool(workers, initializer=ignore_sigint)
    )
    try:
        yield from pool.imap_unordered(analyse_file, paths, chunksize=chunksize)
        pool.close()
    finally:
        pool.terminate()  # at once if stopped early; a no-op for workers that already left
        pool.join()


def _run_futures(paths: list[str], workers: int, chunksize: int) -> Iterator[dict[str, Any]]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    executor = ProcessPoolExecutor(max_workers=workers, initializer=ignore_sigint)
    try:
        # submit() starts the workers: they must not see a Ctrl-C before ignore_sigint runs
        futures = _started_ignoring_sigint(
            lambda: [executor.submit(analyse_file, p) for p in paths]
        )
        for future in as_completed(futures):
            yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_joblib(paths: list[str], workers: int, chunksize: int) -> Iterator[dict[str, Any]]:
    from joblib import Parallel, delayed
    from joblib.externals.loky import get_reusable_executor

    scratch = tempfile.mkdtemp(prefix="capstone-joblib-")  # for joblib, instead of shared memory
    parallel = Parallel(
        n_jobs=workers,
        return_as="generator_unordered",
        batch_size=chunksize,
        max_nbytes=None,  # no arrays to memory-map: paths in, small records out
        temp_folder=scratch,
    )
    results = parallel(delayed(analyse_file)(p) for p in paths)
    try:
        yield from results
    finally:
        with warnings.catch_warnings():  # stopped early: joblib warns about the cancelled
            warnings.simplefilter("ignore", UserWarning)
            results.close()  # an unfinished generator cancels what is left
        get_reusable_executor().shutdown(wait=True)  # loky keeps its workers otherwise
        shutil.rmtree(scratch, ignore_errors=True)


def _run_dask(paths: list[str], workers: int, chunksize: int) -> Iterator[dict[str, Any]]:
    from dask.distributed import Client, LocalCluster, as_completed

    scratch = tempfile.mkdtemp(prefix="capstone-dask-")  # the workers' files
    cluster = _started_ignoring_sigint(  # its worker processes inherit "ignore Ctrl-C"
        lambda: LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # any free port
            silence_logs=logging.CRITICAL,
            local_directory=scratch,
        )
    )
    client = Client(cluster)
    try:
        futures = client.map(analyse_file, paths, pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _serve(conn: Any, stall_on: str | None) -> None:
    """A worker of :func:`run_with_time_limit`: analyse each path it receives until None."""
    ignore_sigint()
    conn.send("ready")  # started: from now on, the time a file takes is the file's
    while (path := conn.recv()) is not None:
        conn.send(analyse_file(path, stall_on=stall_on))


def run_with_time_limit(
    paths: Iterable[str | os.PathLike[str]],
    workers: int = 2,
    limit: float = 10.0,
    *,
    stall_on: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a record per path as they finish; a file still running after ``limit`` seconds
    gets an error record, and its worker is terminated and replaced.

    A ``Pool`` can't stop one task; here each worker is a ``Process`` fed one path at a
    time through its own ``Pipe``, so the parent knows which file each worker is on and
    since when. A worker's clock starts when it is ready, so the time it takes to start
    (seconds under spawn on a busy machine) is not counted against the first file it is
    given. ``stall_on`` is passed to :func:`analyse_file` (demonstrations only).
    """
    todo = _check_run_args(paths, workers)[::-1]  # pop() takes them in the given order
    limit = check_seconds(limit, "limit")
    if limit == 0:
        raise ValueError("limit must be > 0 seconds")
    procs: dict[Any, Any] = {}  # the parent's end of each worker's pipe -> its Process
    busy: dict[Any, tuple[str, float]] = {}  # pipe end -> (path, deadline)
    starting: set[Any] = set()  # pipe ends of workers not ready yet
    idle: list[Any] = []

    def start_worker() -> None:
        mine, theirs = multiprocessing.Pipe()
        proc = multiprocessing.Process(target=_serve, args=(theirs, stall_on), daemon=True)
        _started_ignoring_sigint(proc.start)
        theirs.close()
        procs[mine] = proc
        starting.add(mine)

    def stop_worker(conn: Any) -> None:
        proc = procs.pop(conn)
        proc.terminate()
        proc.join()
        conn.close()

    try:
        for _ in range(min(workers, len(todo))):
            start_worker()
        while todo or busy:
            while idle and todo:
                conn, path = idle.pop(), todo.pop()
                try:
                    conn.send(path)
                except OSError:  # it died while idle: replace it; the path waits
                    todo.append(path)
                    stop_worker(conn)
                    start_worker()
                    continue
                busy[conn] = (path, time.monotonic() + limit)
            deadlines = [deadline for _, deadline in busy.values()]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for conn in wait([*busy, *starting], timeout=timeout):
                if conn in starting:
                    starting.discard(conn)
                    try:
                        conn.recv()  # "ready"
                    except (EOFError, OSError):  # died starting: don't start workers forever
                        code = procs[conn].exitcode
                        stop_worker(conn)
                        raise RuntimeError(
                            f"a worker died while starting (exit code {code})"
                        ) from None
                    idle.append(conn)
                    continue
                path, _ = busy.pop(conn)
                try:
                    record = conn.recv()
                    idle.append(conn)
                except (EOFError, OSError):  # the worker died (killed, crashed): replace
                    code = procs[conn].exitcode
                    stop_worker(conn)
                    record = {"path": path, "error": f"WorkerDied: exit code {code}"}
                    start_worker()
                yield record
            now = time.monotonic()
            for conn, (path, deadline) in list(busy.items()):
                if deadline <= now:
                    del busy[conn]
                    stop_worker(conn)
                    start_worker()
                    yield {"path": path, "error": f"TimeoutError: still running after {limit:g} s"}
    finally:
        for conn, proc in list(procs.items()):
            if conn in idle:
                try:
                    conn.send(None)  # a clean exit for idle workers
                    proc.join(timeout=1)
                except OSError:
                    pass
            stop_worker(conn)  # busy or still starting: terminated at once


def summary_table(records: Iterable[dict[str, Any]], top: int = 5) -> str:
    """A short text report: totals, the most complex files, the most imported modules,
    and every file that failed with its error."""
    check_count(top, "top")
    records = list(records)
    good = [r for r in records if "error" not in r]
    failed = sorted((r for r in records if "error" in r), key=lambda r: r["path"])
    lines = [
        f"files analysed   {len(good):>8}",
        f"files failed     {len(failed):>8}",
        f"lines            {sum(r['lines'] for r in good):>8}",
        f"functions        {sum(r['functions'] for r in good):>8}",
        f"classes          {sum(r['classes'] for r in good):>8}",
    ]
    if good:
        lines.append("")
        lines.append("most complex files (complexity, lines):")
        for r in sorted(good, key=lambda r: (-r["complexity"], r["path"]))[:top]:
            lines.append(f"  {r['complexity']:>6} {r['lines']:>7}  {r['path']}")
        imports = Counter(name for r in good for name in r["imports"])
        if imports:
            common = ", ".join(f"{name} ({n})" for name, n in imports.most_common(top))
            lines.append(f"most imported: {common}")
    if failed:
        lines.append("")
        lines.append("failed files:")
        lines.extend(f"  {r['path']}: {r['error']}" for r in failed)
    return "\n".join(lines)
