"""Workers and tools for chapter 10 (pitfalls and debugging).

Everything here runs in child processes (or builds what they need): a child started
with spawn or forkserver imports it by module name. :func:`run_script` runs a small
script in its own process group, so a lesson can crash it, interrupt it or let it hang
without touching the notebook's kernel.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psutil

from helpers.pools import checked_sqrt, slow_square, square, whoami
from helpers.validate import check_count, check_number, check_seconds, check_str

__all__ = [
    "LOCK",
    "SETTING",
    "Account",
    "NeedsTwoArgs",
    "Picklability",
    "ScriptRun",
    "check_picklable",
    "checked_sqrt",
    "slow_square",
    "square",
    "whoami",
    "read_setting",
    "set_setting",
    "use_lock",
    "init_shared",
    "add_to_counter",
    "say_then_exit",
    "init_queue_logging",
    "logged_square",
    "call_and_report",
    "raise_needs_two",
    "loads",
    "kill_self",
    "stuck_worker",
    "ignore_sigint",
    "nested_pool",
    "try_lock",
    "hold_lock",
    "leaky_task",
    "run_script",
    "start_method",
    "call_pickled",
    "crash_in_c",
    "square_into",
    "risky_square",
]

# A module global, for section 2: fork children copy the parent's value, spawn and
# forkserver children import this module again and see this default.
SETTING = "default"

# A lock at module level, for section 9 (fork while another thread holds it).
LOCK = threading.Lock()

# The lock and counter a pool worker got from init_shared (section 2's fix).
_worker_lock: Any = None
_worker_counter: Any = None

# What leaky_task keeps forever (section 6).
_LEAK: list[bytes] = []


class Picklability(NamedTuple):
    """What :func:`check_picklable` found: ``ok``, the pickled ``size`` or the ``error``."""

    ok: bool
    size: int | None
    error: str | None


def check_picklable(obj: Any) -> Picklability:
    """Try to pickle ``obj`` as multiprocessing would send it to a worker.

    Uses ``multiprocessing.reduction.ForkingPickler``, the pickler of queues, pipes and
    pools. Returns ``Picklability(True, size, None)`` or ``Picklability(False, None,
    "ErrorType: message")``; it never raises for an object that can't be pickled.
    """
    try:
        data = multiprocessing.reduction.ForkingPickler.dumps(obj)
    except Exception as exc:  # what fails varies: PicklingError, TypeError, AttributeError...
        return Picklability(False, None, f"{type(exc).__name__}: {exc}")
    return Picklability(True, len(data), None)


class Account:
    """A tiny class defined in an importable module: its instances and bound methods pickle."""

    def __init__(self, balance: float = 0) -> None:
        self.balance = check_number(balance, "balance")

    def deposit(self, amount: float) -> float:
        """Add ``amount``; return the new balance."""
        self.balance += check_number(amount, "amount")
        return self.balance


def read_setting(_: Any = None) -> str:
    """Return this process's value of the module global ``SETTING``."""
    return SETTING


def set_setting(value: str) -> None:
    """Pool ``initializer``: set ``SETTING`` once in each worker."""
    global SETTING
    SETTING = check_str(value, "value")


def use_lock(lock: Any, x: float) -> float:
    """A task that takes a lock as an argument (fails: locks travel only by inheritance)."""
    with lock:
        return square(x)


def init_shared(lock: Any, counter: Any) -> None:
    """Pool ``initializer``: keep a shared ``lock`` and ``counter`` (a ``Value``) in each worker."""
    global _worker_lock, _worker_counter
    if not hasattr(lock, "acquire"):
        raise TypeError(f"lock must be a lock, got {type(lock).__name__}")
    if not hasattr(counter, "value"):
        raise TypeError(f"counter must be a Value, got {type(counter).__name__}")
    _worker_lock, _worker_counter = lock, counter


def add_to_counter(x: int) -> int:
    """Add ``x`` to the counter from :func:`init_shared`, under its lock; return the new total."""
    if _worker_lock is None or _worker_counter is None:
        raise RuntimeError("no shared counter: start the pool with initializer=init_shared")
    check_number(x)
    with _worker_lock:
        _worker_counter.value += x
        return _worker_counter.value


def say_then_exit(message: str, flush: bool) -> None:
    """Print ``message`` (flushed or not), then end the process at once with ``os._exit(0)``.

    ``os._exit`` skips the interpreter's clean-up, as a crash or a kill would: a line that
    is still in the ``sys.stdout`` buffer is lost.
    """
    print(check_str(message, "message"), flush=bool(flush))
    os._exit(0)


def init_queue_logging(q: Any, level: int = logging.INFO) -> None:
    """Pool ``initializer``: send this worker's log records to queue ``q``.

    Replaces the root logger's handlers with one ``QueueHandler``, so records are not
    also written by handlers a fork child inherited from its parent.
    """
    if not hasattr(q, "put_nowait"):
        raise TypeError(f"q must be a queue, got {type(q).__name__}")
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(q)]
    root.setLevel(level)


def logged_square(x: float, seconds: float = 0.05) -> tuple[float, int]:
    """Log a record about ``x`` (logger ``"worker"``), sleep, return ``(x * x, pid)``."""
    check_number(x)
    logging.getLogger("worker").info("squaring %s", x)
    time.sleep(check_seconds(seconds))
    return x * x, os.getpid()


def call_and_report(q: Any, func: Any, *args: Any) -> None:
    """Process target: run ``func(*args)`` and put the outcome on ``q``.

    Puts ``("ok", result)``, or ``("error", formatted traceback)`` and exits with code 1:
    the parent gets the whole traceback, not only an exit code.
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    try:
        result = func(*args)
    except Exception:
        q.put(("error", traceback.format_exc()))
        q.close()
        q.join_thread()  # make sure the report is sent before exiting
        sys.exit(1)
    q.put(("ok", result))


class NeedsTwoArgs(Exception):
    """An exception that pickles but can't be unpickled: ``__init__`` wants two arguments
    and only one ends up in ``args``."""

    def __init__(self, value: Any, detail: str) -> None:
        super().__init__(value)
        self.detail = detail


def raise_needs_two(x: Any) -> None:
    """Raise :class:`NeedsTwoArgs`: the parent will fail to rebuild it."""
    raise NeedsTwoArgs(x, "details")


def loads(data: bytes) -> str:
    """Unpickle ``data`` here; return ``"ok"`` or ``"ErrorType: message"``."""
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    try:
        pickle.loads(data)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def kill_self(delay: float = 0.0) -> None:
    """After ``delay`` seconds, send this process SIGKILL, as the out-of-memory killer does."""
    time.sleep(check_seconds(delay, "delay"))
    # Windows has no SIGKILL: os.kill with SIGTERM ends the process at once there too.
    os.kill(os.getpid(), signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


def stuck_worker(ready: Any, never: Any, dump_after: float = 0.5) -> None:
    """A worker that gets stuck waiting for ``never`` (an Event nobody sets).

    Before it blocks it arms ``faulthandler``: a dump of every thread's stack to stderr
    after ``dump_after`` seconds, and another one whenever it receives SIGUSR1. Then it
    sets ``ready``.
    """
    faulthandler.dump_traceback_later(check_seconds(dump_after, "dump_after"))
    if hasattr(signal, "SIGUSR1"):  # not on Windows
        faulthandler.register(signal.SIGUSR1)
    ready.set()
    never.wait()  # the stuck line


def ignore_sigint() -> None:
    """Pool ``initializer``: workers ignore Ctrl-C; the parent decides what happens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def nested_pool(n: int) -> list[int] | str:
    """Try to start a ``Pool`` of 2 inside this process and square ``range(n)`` with it.

    Returns the squares, or ``"ErrorType: message"`` if the pool can't be started.
    """
    check_count(n, "n")
    try:
        with multiprocessing.Pool(2) as pool:
            return pool.map(square, range(n))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def try_lock(timeout: float) -> None:
    """Process target: try to acquire the module's ``LOCK`` within ``timeout`` seconds.

    Exits with code 0 if it got the lock, 3 if not (the exit code is the answer).
    """
    got = LOCK.acquire(timeout=check_seconds(timeout, "timeout"))
    if got:
        LOCK.release()
    sys.exit(0 if got else 3)


def hold_lock(release: threading.Event, holding: threading.Event) -> None:
    """Thread target: hold ``LOCK`` (set ``holding``) until ``release`` is set."""
    with LOCK:
        holding.set()
        release.wait(30)


def leaky_task(x: int, mb: int = 5) -> tuple[int, int, float]:
    """A task that leaks: keeps ``mb`` MB forever. Returns ``(x, pid, resident MB)``."""
    check_count(x, "x")
    check_count(mb, "mb")
    _LEAK.append(b"x" * (mb * 1024 * 1024))
    rss = psutil.Process().memory_info().rss / 2**20
    return x, os.getpid(), rss


@dataclass
class ScriptRun:
    """What :func:`run_script` saw."""

    returncode: int | None  # None if the script was still running at the timeout
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float  # from the interrupt (if one was sent) or the start, to the end
    leftovers: list[str] = field(default_factory=list)  # processes of the script still alive


def _group_members(pgid: int) -> list[psutil.Process]:
    """The live processes of group ``pgid`` (on Windows: process ``pgid`` and its children)."""
    if not hasattr(os, "getpgid"):
        try:
            leader = psutil.Process(pgid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def _is_resource_tracker(proc: psutil.Process) -> bool:
    try:
        return "resource_tracker" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _kill_group(pgid: int, tracker_wait: float = 5.0) -> None:
    """SIGKILL every process of group ``pgid`` but its resource trackers, then the rest.

    A resource tracker removes the named semaphores and shared memory its program left
    behind once every process of that program has gone; killed with the others, it
    couldn't, and they would stay in ``/dev/shm`` until the next reboot. So it gets up to
    ``tracker_wait`` seconds to clean up and exit by itself.
    """
    trackers = []
    for member in _group_members(pgid):
        if _is_resource_tracker(member):
            trackers.append(member)
            continue
        try:
            member.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(trackers, timeout=tracker_wait)
    if not hasattr(os, "killpg"):  # Windows: no process groups to signal
        for member in _group_members(pgid):
            try:
                member.kill()
            except psutil.Error:
                continue
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _start(source: str, args: tuple[str, ...], env: dict[str, str] | None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", source, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )


def run_script(
    source: str,
    *args: str,
    timeout: float = 20.0,
    interrupt_on: str | None = None,
    grace: float = 2.0,
    env: dict[str, str] | None = None,
    line_timeout: float = 30.0,
) -> ScriptRun:
    """Run ``python -c source *args`` in a new process group and capture its output.

    With ``interrupt_on``, send SIGINT to the whole group (as Ctrl-C in a terminal does)
    as soon as the script prints that line (waiting at most ``line_timeout`` seconds for
    it); ``timeout`` then counts from the interrupt, so a slow start on a busy machine
    doesn't eat into it. Wait at most ``timeout`` seconds for the script; then wait up
    to ``grace`` seconds for its other processes to end, note any still alive in
    ``leftovers``, and kill the whole group, so nothing survives.
    ``env`` replaces the environment (default: this process's).
    """
    check_str(source, "source", nonempty=True)
    timeout = check_seconds(timeout, "timeout")
    grace = check_seconds(grace, "grace")
    line_timeout = check_seconds(line_timeout, "line_timeout")
    if interrupt_on is not None and not hasattr(os, "killpg"):
        raise NotImplementedError("interrupt_on sends Ctrl-C to a process group: POSIX only")
    # A process started from one that ignores SIGINT inherits that: Ctrl-C would do nothing.
    restore = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    )
    if restore:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        proc = _start(source, args, env)
    finally:
        if restore:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=stream, b=buf: b.extend(s), daemon=True)
        for stream, buf in ((proc.stdout, out), (proc.stderr, err))
    ]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    deadline = started + timeout
    if interrupt_on is not None:
        deadline = started + line_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if any(line.rstrip("\n") == interrupt_on for line in out):
                os.killpg(proc.pid, signal.SIGINT)
                started = time.monotonic()
                deadline = started + timeout
                break
            time.sleep(0.01)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    seconds = time.monotonic() - started
    end = time.monotonic() + grace
    while (members := _group_members(proc.pid)) and time.monotonic() < end:
        time.sleep(0.05)
    leftovers = []
    for member in members:
        try:
            leftovers.append(" ".join(member.cmdline())[:100])
        except psutil.Error:
            continue
    _kill_group(proc.pid)
    proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    return ScriptRun(
        returncode=None if timed_out else proc.returncode,
        stdout="".join(out),
        stderr="".join(err),
        timed_out=timed_out,
        seconds=seconds,
        leftovers=leftovers,
    )


def start_method(_: Any = None) -> str:
    """Return the start method of the process running this task (the argument is ignored)."""
    return multiprocessing.get_start_method()


def call_pickled(data: bytes, *args: Any) -> Any:
    """Unpickle a function from ``data`` and return ``function(*args)``.

    This is what joblib's loky and Dask do with a function they pickled with cloudpickle:
    a plain ``pickle.loads`` in the worker rebuilds it (cloudpickle must be installed there).
    """
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    func = pickle.loads(data)
    if not callable(func):
        raise TypeError(f"data must hold a pickled callable, got {type(func).__name__}")
    return func(*args)


def crash_in_c() -> None:
    """Crash this process in C (a read of address 0), with ``faulthandler`` armed first.

    The process dies of ``SIGSEGV`` (exit code -11): no exception, no ``finally``. The
    Python stack ``faulthandler`` writes to stderr is the only sign of where it was.
    """
    faulthandler.enable()
    ctypes.string_at(0)  # reads memory at address 0: a segmentation fault


def square_into(numbers: list[int], q: Any) -> None:
    """Process target: put the square of each number of ``numbers`` on queue ``q``.

    One item per number, in order, each computed by :func:`risky_square`: a negative
    number is a bad record, it raises ``ValueError`` (after the squares before it were
    put), which ends the process with exit code 1. If the environment variable
    ``PITFALLS_TRACE`` names a file, a line ``"<pid> <count>"`` is appended to it first
    (the exercise check reads it).
    """
    if not hasattr(q, "put"):
        raise TypeError(f"q must be a queue, got {type(q).__name__}")
    numbers = list(numbers)
    trace = os.environ.get("PITFALLS_TRACE")
    if trace:
        with open(trace, "a") as f:
            f.write(f"{os.getpid()} {len(numbers)}\n")
    for x in numbers:
        q.put(risky_square(x))


def risky_square(x: int) -> int:
    """Return ``x * x``; a negative ``x`` (a bad record) raises ``ValueError``.

    If the environment variable ``PITFALLS_KILL_AT`` holds ``x``, the process kills
    itself with SIGKILL instead (as the out-of-memory killer would), which an exercise
    check uses to end a worker in a way the caller can't foresee. If
    ``PITFALLS_SLOW_AT`` holds ``x``, it sleeps 2 s first: a worker still busy when
    another one fails.
    """
    check_number(x)
    if x < 0:
        raise ValueError(f"bad record: {x}")
    if os.environ.get("PITFALLS_KILL_AT") == str(x):
        os.kill(os.getpid(), signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    if os.environ.get("PITFALLS_SLOW_AT") == str(x):
        time.sleep(2)
    return x * x
