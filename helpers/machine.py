"""Machine check for instructors: will the course's timing demos show their lessons here?

Run ``python -m helpers.machine`` (or ``make check-machine``). In a few seconds it measures
this machine against its own limits: the CPUs this process may use, the CPU-bound speed-up
with 1..usable processes, the start + join cost of a child per start method, and how fast
data reaches a child through a queue, a pipe and shared memory compared with a plain copy.
It then prints a verdict for each chapter whose claims depend on these numbers, and exits
with status 0 if every demo should show its lesson, 1 otherwise.

``--json`` prints the measurements as JSON; ``--from-json FILE`` prints the report and
verdicts for measurements saved earlier (for example on a workshop machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Measurements",
    "Verdict",
    "measure",
    "verdicts",
    "exit_status",
    "format_report",
    "main",
    "SPEEDUP_NEEDED",
    "SPAWN_OVER_FORK_NEEDED",
    "SHARED_MEMORY_SHARE_NEEDED",
    "QUEUE_SHARE_LIMIT",
]

# The margins the notebooks' asserts use (a measurement below them fails a notebook).
SPEEDUP_NEEDED = 1.3  # 2 processes against 1 (00, 02, 09)
SPAWN_OVER_FORK_NEEDED = 3.0  # spawn start-up against fork (09, section 3)
SHARED_MEMORY_SHARE_NEEDED = 1 / 4  # shared memory against a copy (09, section 4)
QUEUE_SHARE_LIMIT = 1 / 5  # a queue against a copy, at most (09, section 4)
SHARED_MEMORY_OVER_QUEUE_NEEDED = 2.0  # shared memory against a queue (06)
PAYLOAD = 32 * 2**20  # bytes moved to a child (as in 09, section 4)
# Chapters that skip their speed-up, race or overlap asserts with a single usable CPU.
ONE_CPU_CHAPTERS = "00, 01, 02, 05, 06, 07, 08, 09"

STATUSES = ("ok", "limited", "fail")


@dataclass
class Measurements:
    """What :func:`measure` found. Ratios and shares, plus the raw seconds they came from."""

    python: str = ""
    cpu_count: int | None = None
    affinity: int | None = None
    process_cpu_count: int | None = None
    quota: float | None = None
    usable: int = 1
    speedup: dict[int, float] = field(default_factory=dict)  # workers -> T(1)/T(n)
    startup: dict[str, float] = field(default_factory=dict)  # start method -> seconds
    copy_gbs: float | None = None  # an in-process copy, GB/s
    transfer: dict[str, float] = field(default_factory=dict)  # method -> share of the copy

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Measurements:
        """Read measurements saved with :meth:`to_json` (``ValueError`` if malformed)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"text is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("text must hold a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        try:
            data["speedup"] = {int(k): float(v) for k, v in data.get("speedup", {}).items()}
            data["startup"] = {str(k): float(v) for k, v in data.get("startup", {}).items()}
            data["transfer"] = {str(k): float(v) for k, v in data.get("transfer", {}).items()}
            usable = data.get("usable", 1)
            if isinstance(usable, bool) or not isinstance(usable, int) or usable < 1:
                raise ValueError(f"usable must be an int >= 1, got {usable!r}")
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"malformed measurements: {exc}") from None
        return cls(**data)


class Verdict(NamedTuple):
    """What the measurements mean for some chapters: ok, limited (asserts skipped, the
    lesson is not visible) or fail (their asserts would fail)."""

    chapters: str
    status: str
    message: str


# --- Measuring -------------------------------------------------------------------------


def _cpu_counts() -> dict[str, Any]:
    from helpers.performance import cgroup_cpu_limit
    from helpers.work import usable_cpus

    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "process_cpu_count": os.process_cpu_count() if hasattr(os, "process_cpu_count") else None,
        "quota": cgroup_cpu_limit(),
        "usable": usable_cpus(),
    }


def _speedups(usable: int, seconds: float = 0.2, repeat: int = 3) -> dict[int, float]:
    from concurrent.futures import ProcessPoolExecutor

    from helpers.performance import compare, nap
    from helpers.work import busy_sum, calibrate

    counts = list(range(1, min(usable, 4) + 1))
    total = calibrate(seconds)
    with ProcessPoolExecutor(max_workers=counts[-1]) as executor:
        list(executor.map(nap, [0.05] * counts[-1]))  # start the workers first
        runs = {str(n): lambda n=n: list(executor.map(busy_sum, [total // n] * n)) for n in counts}
        timings = compare(runs, repeat=repeat)
    return {n: timings.ratio("1", str(n)) for n in counts}


def _startups() -> dict[str, float]:
    from helpers.performance import noop, start_join_seconds

    return {
        m: start_join_seconds(m, noop, repeat=3) for m in multiprocessing.get_all_start_methods()
    }


def _transfers(nbytes: int = PAYLOAD) -> tuple[float, dict[str, float]]:
    import numpy as np

    from helpers.performance import TRANSFER_METHODS, compare, transfer_seconds

    source = np.ones(nbytes, dtype=np.uint8)
    target = np.empty_like(source)
    copy_seconds = compare({"copy": lambda: np.copyto(target, source)}, repeat=5).best("copy")
    shares = {}
    for method in TRANSFER_METHODS:
        rounds = 5 if method == "shared memory" else 2  # its rounds are quick
        seconds = transfer_seconds(method, [nbytes], rounds=rounds)[nbytes]
        shares[method] = copy_seconds / seconds
    return nbytes / copy_seconds / 1e9, shares


def measure() -> Measurements:
    """Measure this machine (a few seconds)."""
    counts = _cpu_counts()
    copy_gbs, transfer = _transfers()
    return Measurements(
        python=f"{platform.python_version()} on {platform.system()}",
        **counts,
        speedup=_speedups(counts["usable"]),
        startup=_startups(),
        copy_gbs=copy_gbs,
        transfer=transfer,
    )


# --- Verdicts --------------------------------------------------------------------------


def verdicts(m: Measurements) -> list[Verdict]:
    """Judge measurements against the margins the notebooks' asserts use."""
    if not isinstance(m, Measurements):
        raise TypeError(f"m must be Measurements, got {type(m).__name__}")
    out = []
    if m.usable < 2:
        out.append(
            Verdict(
                ONE_CPU_CHAPTERS,
                "limited",
                "one usable CPU: the speed-up, race and overlap demos show nothing; their "
                "asserts are skipped, so the notebooks pass but learners won't see the lessons",
            )
        )
    else:
        out.append(Verdict(ONE_CPU_CHAPTERS, "ok", f"{m.usable} usable CPUs (the demos need 2)"))
    if m.quota is not None and m.quota < 2 <= m.usable:
        out.append(
            Verdict(
                "00, 02, 09",
                "fail",
                f"a container CPU quota of {m.quota:g} CPUs, but {m.usable} CPUs look usable: "
                "the speed-up asserts run and will fail",
            )
        )
    if m.usable >= 2:
        s2 = m.speedup.get(2)
        if s2 is None:
            out.append(Verdict("00, 02, 09", "fail", "no speed-up with 2 processes was measured"))
        elif s2 < SPEEDUP_NEEDED:
            out.append(
                Verdict(
                    "00, 02, 09",
                    "fail",
                    f"2 processes ran only {s2:.2f}x as fast as 1 (the asserts need "
                    f"{SPEEDUP_NEEDED}x): the CPUs are busy with other work or throttled "
                    "(power saving?)",
                )
            )
        else:
            out.append(
                Verdict("00, 02, 09", "ok", f"2 processes: {s2:.2f}x ({s2 / 2:.0%} of ideal)")
            )
    fork, spawn = m.startup.get("fork"), m.startup.get("spawn")
    if fork is None or spawn is None:
        out.append(
            Verdict("09", "limited", "no fork here: section 3 shows spawn's start-up cost alone")
        )
    elif spawn < SPAWN_OVER_FORK_NEEDED * fork:
        out.append(
            Verdict(
                "09",
                "fail",
                f"spawn starts a child only {spawn / fork:.1f}x slower than fork "
                f"(section 3 asserts more than {SPAWN_OVER_FORK_NEEDED:g}x)",
            )
        )
    else:
        out.append(Verdict("09", "ok", f"spawn start-up is {spawn / fork:.0f}x fork's"))
    shm, queue = m.transfer.get("shared memory"), m.transfer.get("queue")
    if shm is None or queue is None:
        out.append(Verdict("06, 09", "fail", "data transfers were not measured"))
    else:
        problems = []
        if shm < SHARED_MEMORY_SHARE_NEEDED:
            problems.append(f"shared memory reaches only {shm:.0%} of a copy")
        if queue > QUEUE_SHARE_LIMIT:
            problems.append(f"a queue reaches {queue:.0%} of a copy")
        if shm < SHARED_MEMORY_OVER_QUEUE_NEEDED * queue:
            problems.append("shared memory is not clearly faster than a queue (06)")
        if problems:
            out.append(Verdict("06, 09", "fail", "; ".join(problems)))
        else:
            out.append(
                Verdict("06, 09", "ok", f"shared memory {shm:.0%} of a copy, a queue {queue:.0%}")
            )
    return out


def exit_status(results: list[Verdict]) -> int:
    """0 if every verdict is ok, 1 otherwise."""
    for v in results:
        if v.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {v.status!r}")
    return 0 if all(v.status == "ok" for v in results) else 1


# --- Report ----------------------------------------------------------------------------


def _n(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def format_report(m: Measurements, results: list[Verdict]) -> str:
    """The text ``python -m helpers.machine`` prints."""
    lines = [f"Machine check for the multiprocessing course (Python {m.python})", "", "CPUs"]
    # os.process_cpu_count() exists from Python 3.13; n/a before
    lines += [
        f"  os.cpu_count()            {_n(m.cpu_count)}",
        f"  CPU affinity              {_n(m.affinity)}",
        f"  os.process_cpu_count()    {_n(m.process_cpu_count) if m.process_cpu_count else 'n/a'}",
        f"  cgroup CPU quota          {'none' if m.quota is None else f'{m.quota:g} CPUs'}",
        f"  usable (usable_cpus())    {m.usable}   (speed-up demos need 2)",
        "",
        "CPU-bound speed-up (same work split over n processes, median of side-by-side rounds)",
    ]
    for n, s in sorted(m.speedup.items()):
        lines.append(f"  {n} process{'es' if n > 1 else '  '}  {s:5.2f}x  {s / n:4.0%} of ideal")
    lines += ["", "Start + join of one child process (fastest of 3)"]
    fork = m.startup.get("fork")
    for method, seconds in m.startup.items():
        vs = f"  {seconds / fork:4.0f}x fork" if fork else ""
        lines.append(f"  {method:<11} {seconds * 1e3:7.1f} ms{vs}")
    lines += ["", f"Moving {PAYLOAD // 2**20} MiB to a child, as a share of a copy in one process"]
    lines.append(
        f"  copy           {_n(None if m.copy_gbs is None else round(m.copy_gbs, 1))} GB/s"
    )
    for method, share in m.transfer.items():
        lines.append(f"  {method:<14} {share:6.1%}")
    lines += ["", "Verdicts"]
    for v in results:
        lines.append(f"  {v.status:<8} {v.chapters:<32} {v.message}")
    status = exit_status(results)
    lines += [
        "",
        "Exit status 0: every timing demo should show its lesson."
        if status == 0
        else "Exit status 1: some demos will not show their lessons here (see above).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.machine", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--from-json", metavar="FILE", help="judge measurements saved earlier")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            m = Measurements.from_json(f.read())
    else:
        start = time.perf_counter()
        m = measure()
        took = time.perf_counter() - start
    if args.json:
        print(m.to_json())
        return 0
    results = verdicts(m)
    print(format_report(m, results))
    if not args.from_json:
        print(f"(measured in {took:.1f} s)")
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
