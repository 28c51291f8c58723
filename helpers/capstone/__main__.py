"""Analyse every Python file under a folder in parallel; resumable, and clean on Ctrl-C.

    python -m helpers.capstone PATH [--workers N] [--engine {pool,futures,joblib,dask}]
                                    [--resume FILE] [--time-limit SECONDS] [--quiet]

Exit status: 0 when done (files that fail to parse are listed, not fatal), 2 for a bad
command line or a path that can't be read, 130 after Ctrl-C (the finished files are in the
resume file).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

from helpers.capstone import (
    ENGINES,
    ResultStore,
    python_files,
    run_engine,
    run_with_time_limit,
    summary_table,
)
from helpers.work import usable_cpus


def positive_int(text: str) -> int:
    value = int(text)  # argparse turns a ValueError into "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.capstone",
        description="Measure every .py file under PATH (lines, functions, classes, "
        "nesting, complexity, docstrings, imports) in parallel.",
    )
    parser.add_argument("path", type=Path, help="a folder (or one .py file) to analyse")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=usable_cpus(),
        help="worker processes (default: the usable CPUs)",
    )
    parser.add_argument("--engine", choices=ENGINES, default="pool", help="default: pool")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="FILE",
        help="JSON-lines file of results: files already in it are skipped, new ones appended",
    )
    parser.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="SECONDS",
        help="stop a file that takes longer and report it (engine pool only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.time_limit is not None and args.engine != "pool":
        parser.error("--time-limit works with --engine pool only")
    return args


def progress_bar(total: int, quiet: bool) -> Any:
    """A tqdm bar on stderr; none when stderr is not a terminal, with --quiet, or without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, unit="file", file=sys.stderr, disable=disable)


def size(path: str) -> int:
    """The file's size in bytes; 0 if it can't be read (the worker reports why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        paths = python_files(os.path.abspath(args.path))  # the same spelling in every run
    except OSError as exc:
        where = exc.filename or args.path
        print(f"error: cannot read {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    store = ResultStore(args.resume) if args.resume else None
    try:
        done = store.load() if store else {}
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the resume file {args.resume}: {exc}", file=sys.stderr)
        return 2
    wanted = {str(p) for p in paths}
    records = {path: r for path, r in done.items() if path in wanted}
    todo = [str(p) for p in paths if str(p) not in records]
    todo.sort(key=size, reverse=True)  # largest first: no big file left for the end
    print(f"{len(paths)} Python files under {args.path}", end="")
    print(f"; {len(records)} done in an earlier run" if records else "", flush=True)
    if not paths:
        print("nothing to analyse")
        return 0

    if args.time_limit is not None:
        results = run_with_time_limit(todo, args.workers, args.time_limit)
    else:
        results = run_engine(todo, args.engine, args.workers)
    bar = progress_bar(len(todo), args.quiet)
    interrupted = False
    try:
        for record in results:
            records[record["path"]] = record
            if store:
                store.append(record)
            if "error" in record:
                message = f"failed: {record['path']}: {record['error']}"
                if bar is not None:
                    bar.write(message, file=sys.stderr)
                else:
                    print(message, file=sys.stderr)
            if bar is not None:
                bar.update()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()  # stops the workers at once if the loop ended early
        if bar is not None:
            bar.close()
        if store:
            store.close()

    print()
    print(summary_table(records.values()))
    if interrupted:
        kept = f"; they are in {args.resume}, run again to resume" if store else ""
        print(f"\ninterrupted: {len(records)} of {len(paths)} files done{kept}")
        return 130
    return 0


if __name__ == "__main__":
    multiprocessing.freeze_support()
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the run started: nothing to keep
        sys.exit(130)
    except BrokenPipeError:  # the output went to a reader that stopped early (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error
        sys.exit(1)
