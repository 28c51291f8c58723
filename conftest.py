"""Test harness: run every notebook under each start method, and check it cleaned up.

nbval (``--nbval-lax``, set in pyproject.toml) executes notebooks cell by cell. This
file swaps nbval's collector for one that runs each notebook once per start method:

    notebooks/01_processes.ipynb::spawn::Cell 3

The start method is chosen from outside the notebook: the kernel starts with an
IPython startup file (in a temporary IPYTHONDIR) that calls
``multiprocessing.set_start_method(...)``. Notebooks hold no test-only code.

After a notebook's last cell, before the kernel is stopped, the harness fails the
notebook if the kernel still has child processes (other than multiprocessing's own
resource tracker and fork server) or if new shared-memory segments are left in
/dev/shm. After the kernel stops, every process it started must be gone, and so must
every named semaphore (/dev/shm/sem.*) the run created.

Any output on stderr (a warning, a child's traceback) fails the cell unless the cell
is tagged ``raises-exception``: learners should see no stray warnings or tracebacks.

Exercises (laid out as ``helpers.exercises`` describes) are run as a learner who skips
them would: the check cell must reject the untouched skeleton with ``ExerciseFailed``.
Then the harness adds three cells of its own: the solution's code, the check again (it
must pass and say "Correct"), and the skeleton again, so the cells after the exercise
run in the learner's state:

    notebooks/01_processes.ipynb::spawn::Cell 20
    notebooks/01_processes.ipynb::spawn::Cell 20 · solution
    notebooks/01_processes.ipynb::spawn::Cell 20 · check accepts the solution
    notebooks/01_processes.ipynb::spawn::Cell 20 · exercise restored

Choose methods with ``--start-method spawn`` (repeatable); default: all available.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat
import psutil
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

from helpers.exercises import exercises, tags

SHM = Path("/dev/shm")
# Processes multiprocessing (and joblib's loky) start for their own bookkeeping; they exit
# with the kernel.
BOOKKEEPERS = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    "joblib.externals.loky.backend.resource_tracker",
)
# Seconds a chapter may take per start method on 2 cores (COURSE_GUIDE.md); chapter 11
# starts Dask clusters as part of its lesson.
BUDGET = 30
BUDGETS = {"11_beyond_one_machine.ipynb": 45, "12_capstone.ipynb": 45}

STARTUP = """\
import multiprocessing, os
_method = os.environ.get("COURSE_START_METHOD")
if _method:
    multiprocessing.set_start_method(_method, force=True)
del _method
"""


def pytest_addoption(parser):
    parser.addoption(
        "--start-method",
        action="append",
        choices=["fork", "spawn", "forkserver"],
        help="run notebooks under this start method (repeatable; default: every available one)",
    )


def pytest_configure(config):
    methods = config.getoption("start_method") or ["fork", "spawn", "forkserver"]
    available = multiprocessing.get_all_start_methods()
    config.course_start_methods = [m for m in methods if m in available]
    ipython_dir = Path(tempfile.mkdtemp(prefix="course-ipython-"))
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-start-method.py").write_text(STARTUP)
    config.course_ipython_dir = ipython_dir
    config.course_timings = []


def pytest_unconfigure(config):
    ipython_dir = getattr(config, "course_ipython_dir", None)
    if ipython_dir is not None:
        shutil.rmtree(ipython_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, config):
    if not config.course_timings:
        return
    terminalreporter.section(
        f"notebook wall time (budget: {BUDGET} s per chapter and start method, unless noted)"
    )
    # A chapter's time is its run as a learner's Run All makes it (kernel start, every cell,
    # the checks for leftovers); the cells the harness adds (each solution, its check run
    # again, the exercise restored) are counted apart.
    for name, method, seconds, harness in config.course_timings:
        budget = BUDGETS.get(name, BUDGET)
        flag = f"  <-- over budget ({budget} s)" if seconds > budget else ""
        extra = f"  (+{harness:.1f} s harness cells)" if harness else ""
        terminalreporter.write_line(f"{seconds:6.1f} s  {method:<10} {name}{flag}{extra}")


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    outcome = yield
    if file_path.suffix != ".ipynb":
        return
    results = [r for r in outcome.get_result() if not isinstance(r, IPyNbFile)]
    if len(results) != len(outcome.get_result()):  # nbval collected it: run it per method
        results.append(NotebookRuns.from_parent(parent, path=file_path))
    outcome.force_result(results)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # re-raises if the cell itself failed
    if not isinstance(item, IPyNbCell):
        return result
    cell_tags = tags(item.cell)
    if "raises-exception" not in cell_tags:
        _fail_on_stderr(item)
    if "check" in cell_tags:
        _require_rejection(item)
    if getattr(item, "course_role", None) == "check accepts the solution":
        _require_verdict(item)
    return result


def _outputs(item, output_type):
    outputs = getattr(item, "test_outputs", [])
    return [out for out in outputs if out.get("output_type") == output_type]


def _require_rejection(item):
    """A check cell run on the untouched skeleton must raise ExerciseFailed, nothing else."""
    errors = _outputs(item, "error")
    if not errors:
        pytest.fail(
            "the check accepted the untouched exercise skeleton: it must fail with a hint",
            pytrace=False,
        )
    if errors[0].get("ename") != "ExerciseFailed":
        pytest.fail(
            "the check should reject the untouched skeleton with ExerciseFailed, but raised "
            f"{errors[0].get('ename')}:\n" + "\n".join(errors[0].get("traceback", [])),
            pytrace=False,
        )


def _require_verdict(item):
    stdout = "".join(out.get("text", "") for out in _outputs(item, "stream"))
    if "Correct" not in stdout:
        pytest.fail(f"the check ran on the solution without saying 'Correct':\n{stdout}", False)


def _fail_on_stderr(item):
    stderr = "".join(
        out.get("text", "")
        for out in getattr(item, "test_outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    )
    if stderr.strip():
        pytest.fail(
            f"cell wrote to stderr (a warning or traceback a learner would see); fix it, or tag "
            f"the cell raises-exception if the error is the lesson:\n{stderr}",
            pytrace=False,
        )


class NotebookRuns(pytest.File):
    """One notebook; its children are one nbval run per start method."""

    def collect(self):
        for method in self.config.course_start_methods:
            yield StartMethodRun.from_parent(
                self, path=self.path, name=method, nodeid=f"{self.nodeid}::{method}"
            )


def _shm_names() -> set[str]:
    """Shared-memory segments now in /dev/shm. Named semaphores (sem.*) are left out here:
    under spawn and forkserver a live Lock or Queue keeps one there, and the notebook's last
    cell may still hold some. They are checked after the kernel has stopped instead
    (``_leaked_semaphores``)."""
    if not SHM.is_dir():
        return set()
    return {name for name in os.listdir(SHM) if not name.startswith("sem.")}


def _sem_names() -> set[str]:
    """Named semaphores now in /dev/shm (glibc keeps them there as sem.NAME files)."""
    if not SHM.is_dir():
        return set()
    return {name for name in os.listdir(SHM) if name.startswith("sem.")}


def _mapped_shm_files() -> set[str]:
    """Names of the /dev/shm files some live process still has mapped (from /proc/PID/maps)."""
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # the process is gone, or not ours to read
            continue
        for line in text.splitlines():
            fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
            if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
                mapped.add(fields[5][len("/dev/shm/") :].removesuffix(" (deleted)"))
    return mapped


def _leaked_semaphores(before: set[str], timeout: float = 10.0) -> list[str]:
    """Named semaphores created since ``before`` that no live process has open any more.

    multiprocessing unlinks a named semaphore when its object is finalized (the resource
    tracker does it for objects still alive when the program ends). One that stays in
    /dev/shm after every process that used it is gone stays there until reboot. Semaphores
    of other programs running at the same time are still mapped by them, so they don't count;
    one whose program just ended gets ``timeout`` seconds for its resource tracker to remove it.
    """
    deadline = time.monotonic() + timeout
    while True:
        new = _sem_names() - before
        leaked = sorted(new - _mapped_shm_files()) if new else []
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.2)


def _is_bookkeeper(proc: psutil.Process) -> bool:
    try:
        return any(name in " ".join(proc.cmdline()) for name in BOOKKEEPERS)
    except psutil.Error:
        return True  # already gone


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ({proc.status()}): {' '.join(proc.cmdline())[:120]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


class HarnessCell(IPyNbCell):
    """A cell the harness adds to a notebook run (a solution, a check again, a restore)."""

    course_role = ""

    def runtest(self):
        start = time.perf_counter()
        try:
            super().runtest()
        finally:
            self.parent.course_harness_seconds += time.perf_counter() - start


class StartMethodRun(IPyNbFile):
    """nbval's notebook collector, with a start method, exercise runs and a leftovers check."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False  # lax: run every cell, compare no outputs

    def collect(self):
        cells = list(super().collect())  # reads self.nb
        try:
            found = {id(ex.check): ex for ex in exercises(self.nb)}
        except ValueError as exc:
            raise pytest.UsageError(f"{self.path.name}: {exc}") from None
        for item in cells:
            yield item
            ex = found.get(id(item.cell))
            if ex is None:
                continue
            for role, source in (
                ("solution", ex.solution_code),
                ("check accepts the solution", ex.check.source),
                ("exercise restored", ex.exercise.source),
            ):
                extra = HarnessCell.from_parent(
                    self,
                    name=f"{item.name} · {role}",
                    cell_num=item.cell_num,
                    cell=nbformat.v4.new_code_cell(source),
                    options=defaultdict(bool, check=False),
                )
                extra.course_role = role
                yield extra

    def setup(self):
        self._started = time.perf_counter()
        self.course_harness_seconds = 0.0  # time spent in HarnessCell items
        self._shm_before = _shm_names()
        self._sem_before = _sem_names()
        names = ("COURSE_START_METHOD", "IPYTHONDIR", "PYTEST_CURRENT_TEST")
        saved = {k: os.environ.get(k) for k in names}
        os.environ["COURSE_START_METHOD"] = self.name
        os.environ["IPYTHONDIR"] = str(self.config.course_ipython_dir)
        # ipykernel stops forwarding what child processes write to the notebook when it sees
        # this variable; without it the kernel behaves as in JupyterLab, where learners see
        # their children's tracebacks and warnings (and the stderr check does too).
        os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            super().setup()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def teardown(self):
        problems = []
        started = []
        kernel = self.kernel
        if kernel is not None and kernel.is_alive():
            kernel_proc = psutil.Process(kernel.km.provisioner.pid)
            # Give processes that are already exiting a moment to be reaped.
            deadline = time.monotonic() + 3
            while True:
                started = kernel_proc.children(recursive=True)
                leftovers = [p for p in started if not _is_bookkeeper(p)]
                if not leftovers or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if leftovers:
                problems.append(
                    "child processes still running after the last cell "
                    "(join or close every Process and Pool):\n  "
                    + "\n  ".join(_describe(p) for p in leftovers)
                )
            # Wait a moment: a segment from another test run on the machine may be on its way out.
            deadline = time.monotonic() + 3
            while (
                new_shm := sorted(_shm_names() - self._shm_before)
            ) and time.monotonic() < deadline:
                time.sleep(0.2)
            if new_shm:
                problems.append(
                    "shared memory left in /dev/shm after the last cell "
                    f"(close() and unlink() every SharedMemory): {new_shm}"
                )
        elapsed = time.perf_counter() - self._started - self.course_harness_seconds
        self.config.course_timings.append(
            (self.path.name, self.name, elapsed, self.course_harness_seconds)
        )
        self._shut_down_kernel()
        gone, alive = psutil.wait_procs(started, timeout=10)
        if alive:
            problems.append(
                "processes still alive 10 s after the kernel stopped:\n  "
                + "\n  ".join(_describe(p) for p in alive)
            )
            for proc in alive:
                proc.kill()
        leaked = _leaked_semaphores(self._sem_before)
        if leaked:
            problems.append(
                "named semaphores left in /dev/shm after the kernel and its processes ended "
                "(a process killed before its resource tracker could unlink them, or a tracker "
                "killed with it; a program killed elsewhere on this machine during the run can "
                f"leave them too, so run the notebook again on its own to be sure): {leaked}"
            )
        if problems:
            pytest.fail(f"{self.nodeid}: " + "\n".join(problems), pytrace=False)

    def _shut_down_kernel(self):
        """Ask the kernel to exit, as JupyterLab's "Shut Down Kernel" does.

        nbval kills the kernel's whole process group instead, which also kills
        multiprocessing's resource tracker before it can unlink the semaphores of
        objects still alive in the notebook: they would stay in /dev/shm for good.
        """
        kernel = self.kernel
        if kernel is None or not kernel.is_alive():
            return
        kernel.kc.stop_channels()
        # A kernel that has started child processes doesn't exit on the shutdown request
        # alone; jupyter_client then sends SIGTERM after half of shutdown_wait_time (5 s by
        # default). SIGTERM ends only the kernel: the resource tracker sees it go and
        # cleans up. One second instead of five saves several seconds per notebook.
        kernel.km.shutdown_wait_time = 1.0
        kernel.km.shutdown_kernel(now=False)
        del kernel.km
