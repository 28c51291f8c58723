"""Checks for the exercises of chapter 05 (Pipes and connections)."""

from __future__ import annotations

import multiprocessing
import numbers
import random
import threading
import time
import types
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed, stop_processes

__all__ = ["check_kv_server", "check_gather", "ERROR", "kv_requests", "GATHER_DEADLINE"]

SERVE_MANY = 150  # the server gets 2 * SERVE_MANY ordinary requests besides the scripted ones

# Stands for "any ('error', reason) reply, reason a non-empty str".
ERROR = object()


class RawBytes(bytes):
    """A request sent with ``send_bytes``: bytes that ``recv()`` can't unpickle."""

    def __repr__(self) -> str:
        return f"send_bytes({bytes(self)!r}) (bytes that recv() can't unpickle)"


def kv_requests() -> list[tuple[Any, Any]]:
    """(request, expected reply) pairs for the key-value server, with fresh keys and values."""
    rng = random.Random()
    key, other = f"k{rng.randrange(10**6)}", rng.randrange(1, 10**6)
    v1, v2 = rng.randrange(10**6), [rng.random(), "x" * rng.randrange(1, 9)]
    return [
        (("set", key, v1), ("ok", None)),
        (("get", key), ("ok", v1)),
        (("get", f"{key}-missing"), ERROR),  # a key that was never set
        (("set", other, None), ("ok", None)),
        (("get", other), ("ok", None)),  # a stored None is a value, not a missing key
        (("set", str(other), "s"), ("ok", None)),  # the int key's text is another key
        (("get", other), ("ok", None)),
        (("get", str(other)), ("ok", "s")),
        (("set", 0, ""), ("ok", None)),  # a falsy key and value
        (("get", 0), ("ok", "")),
        (("set", key, v2), ("ok", None)),  # overwrite
        (("get", key), ("ok", v2)),
        ("hello", ERROR),  # a string is not a request
        (["get", key], ERROR),  # neither is a list
        (("div", 1, 2), ERROR),  # an unknown op
        (("set", key), ERROR),  # too few items
        (("get",), ERROR),
        (("get", key, "extra"), ERROR),  # too many
        ((), ERROR),
        (("get", [key]), ERROR),  # a list can't be a dict key
        (("set", {key}, 1), ERROR),  # nor can a set
        (("set", (key, [1]), 1), ERROR),  # nor a tuple holding a list (hash() fails)
        (("get", (key, [1])), ERROR),
        ((["set"], key, 1), ERROR),  # an op that isn't a str (nor hashable)
        (("se", key, 1), ERROR),  # part of an op
        (("set", key, 1, 2), ERROR),  # too many items for set (and nothing is stored)
        (42, ERROR),
        (None, ERROR),
        (["stop"], ERROR),
        (("stop", "now"), ERROR),
        (("gets", key), ERROR),  # an op that only starts like a real one
        (("SET", key, 1), ERROR),  # ops are exact, lower-case strings
        (RawBytes(b"\x80\x05garbage"), ERROR),  # recv() can't unpickle this
        (("get", key), ("ok", v2)),  # still serving, and the data is still there
        # many more requests: a server that serves a fixed number of them stops too soon
        *[(("set", f"n{i}", i), ("ok", None)) for i in range(SERVE_MANY)],
        *[(("get", f"n{i}"), ("ok", i)) for i in range(SERVE_MANY)],
        (("get", key), ("ok", v2)),
        (("stop",), ("ok", "bye")),
    ]


def _is_error(reply: Any) -> bool:
    return (
        isinstance(reply, tuple)
        and len(reply) == 2
        and reply[0] == "error"
        and isinstance(reply[1], str)
        and bool(reply[1].strip())
    )


def _start(learner: LearnerFunction, name: str) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=learner, args=(theirs,), name=name)
    child.start()
    theirs.close()  # only the child holds that end now: if it dies, recv() gets EOFError
    return ours, child


def _ask(ours: Any, request: Any, timeout: float) -> Any:
    crashed = (
        f"the server exited (or crashed) instead of replying to {request!r}: read any "
        "traceback above. Reply to every request, a bad one with ('error', reason), and "
        "return only after ('stop',)"
    )
    try:
        if isinstance(request, RawBytes):
            ours.send_bytes(request)
        else:
            ours.send(request)
    except OSError:  # BrokenPipeError: the child is gone
        fail(crashed)
    if not ours.poll(timeout):
        fail(f"no reply to {request!r} within {timeout:.0f} s: send exactly one reply per request")
    try:
        return ours.recv()
    except (EOFError, OSError):  # closed, or reset: it exited with a request unread
        fail(crashed)


def check_kv_server(kv_server: Any, *, timeout: float = 5.0) -> None:
    """Run ``kv_server(conn)`` in a spawned child and talk to it over a Pipe.

    Good requests (``set``, ``get``, ``stop``) get their replies; every malformed one gets
    ``("error", reason)`` and the server keeps serving; when the client goes away without
    ``stop``, the server returns quietly (exit code 0).
    """
    if not isinstance(kv_server, types.FunctionType):
        fail(f"define kv_server(conn) with def in the cell above (got {type(kv_server)})")
    try:
        learner = LearnerFunction(kv_server)
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    requests = kv_requests()
    ours, child = _start(learner, "kv_server")
    ours2, child2 = _start(learner, "kv_server")  # for the client that vanishes, below
    ours3, child3 = _start(learner, "kv_server")  # for the one that leaves mid-request
    try:
        for request, expected in requests:
            reply = _ask(ours, request, timeout)
            if expected is ERROR:
                expect(
                    _is_error(reply),
                    f"the reply to {request!r} was {reply!r}; expected ('error', reason), "
                    "reason a str saying what was wrong (a request is a tuple: check its "
                    "shape before you use it, and keep serving)",
                )
            else:
                expect(
                    reply == expected and type(reply) is tuple,
                    f"the reply to {request!r} was {reply!r}; expected {expected!r}",
                )
        child.join(timeout=timeout)
        expect(not child.is_alive(), "after replying ('ok', 'bye') to ('stop',), return")
        expect(child.exitcode == 0, f"the server exited with code {child.exitcode}")
    except BaseException:
        stop_processes([child2, child3], timeout=0)
        ours2.close()
        ours3.close()
        raise
    finally:
        ours.close()  # first: a server that returns on EOFError can exit at once
        stop_processes([child], timeout=0.5)

    # The client vanishes without ("stop",).
    ours, child = ours2, child2
    try:
        expect(
            _ask(ours, ("set", "a", 1), timeout) == ("ok", None),
            "('set', 'a', 1) should get ('ok', None)",
        )
        ours.close()
        child.join(timeout=timeout)
        expect(
            not child.is_alive(),
            f"the client closed its end, and {timeout:.0f} s later the server was still "
            "running: when recv() raises EOFError nobody is left to serve, so return",
        )
        expect(
            child.exitcode == 0,
            f"when the client closed its end, the server exited with code {child.exitcode} "
            "(a traceback above?): EOFError means the client is gone; return quietly, and "
            "don't try to send it an error reply",
        )
    except BaseException:
        stop_processes([child3], timeout=0)
        ours3.close()
        raise
    finally:
        stop_processes([child], timeout=0.5)
        ours.close()

    # The client sends requests and leaves without reading a reply: the server's send()
    # finds nobody at the other end (BrokenPipeError) and must return quietly too.
    ours, child = ours3, child3
    try:
        for k in range(20):
            ours.send(("get", f"missing-{k}"))
        ours.close()
        child.join(timeout=timeout)
        expect(
            not child.is_alive(),
            f"the client sent requests and closed its end without reading the replies, and "
            f"{timeout:.0f} s later the server was still running: return once it is gone",
        )
        expect(
            child.exitcode == 0,
            f"the client sent requests and closed its end without reading the replies; the "
            f"server exited with code {child.exitcode} (a traceback above?): send() to a "
            "client that has gone raises BrokenPipeError (an OSError); return quietly then",
        )
    finally:
        stop_processes([child], timeout=0.5)
        ours.close()
    passed(
        f"{len(requests)} requests answered, every malformed one with an error reply, and "
        "the server stopped cleanly on ('stop',) and when its client vanished, even "
        "before reading its replies"
    )


# ---- Exercise 2 ---------------------------------------------------------------------------

GATHER_DEADLINE = 1.2  # seconds, for the run in which two senders never close


def _define(learner: LearnerFunction) -> Any:
    """Define the learner's function in this process now, so that its first call starts at
    once (as :class:`LearnerFunction` does on its first call)."""
    import importlib

    namespace: dict[str, Any] = {"__name__": "__learner__"}
    for alias, module in learner.modules.items():
        namespace[alias] = importlib.import_module(module)
    for alias, (module, qualname) in learner.imported.items():
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        namespace[alias] = value
    exec(compile(learner.source, f"<exercise {learner.name}>", "exec"), namespace)
    return namespace[learner.name]


def _run_gather(learner: Any, calls: list[tuple[list, float]], report: Any) -> None:
    """Child process: say "started", then call ``gather(conns, deadline)`` for each pair in
    ``calls`` and send back each outcome with what the call did besides returning it."""
    with report:
        try:
            gather = _define(learner)
        except BaseException as exc:
            report.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        report.send("started")
        for conns, deadline in calls:
            original = list(conns)
            before = set(threading.enumerate())
            start, cpu = time.monotonic(), time.process_time()  # timed here, so a busy
            try:  # machine can't skew it
                outcome: tuple = ("value", gather(conns, deadline))
            except BaseException as exc:  # reported as a hint, so nothing reaches stderr
                outcome = ("error", f"{type(exc).__name__}: {exc}")
            facts = {"took": time.monotonic() - start, "cpu": time.process_time() - cpu}
            # threads the call started and left running (a moment's grace for stopping ones)
            grace = time.monotonic() + 0.5
            while time.monotonic() < grace:
                left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
                if not left:
                    break
                time.sleep(0.01)
            facts["threads"] = [t.name for t in left] if left else []
            facts["changed"] = len(conns) != len(original) or any(
                a is not b for a, b in zip(conns, original, strict=False)
            )
            facts["closed"] = [i for i, conn in enumerate(original) if conn.closed]
            try:
                report.send((*outcome, facts))
            except Exception as exc:  # e.g. something that can't be pickled
                report.send(("error", f"{type(exc).__name__}: {exc}", facts))


def _arrive_slowly(message: str) -> str:
    """Unpickling a flood message lands here: it takes 10 ms, then gives the plain string."""
    time.sleep(0.01)
    return message


class _SlowMessage:
    """A string that takes 10 ms to unpickle, so the pipe holds seconds of unread messages
    (a reader can't catch up with the flood, however busy the machine)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _arrive_slowly, (self.message,)


def _flood(writer: Any, control: Any) -> None:
    """Child process: say "ready"; on a number from ``control``, send ``"f0", "f1", ...`` on
    ``writer`` as fast as the pipe takes them for that many seconds (each one 10 ms to read);
    then keep ``writer`` open until ``control`` closes."""
    with writer, control:
        try:
            control.send("ready")
            if not control.poll(60):
                return
            end = time.monotonic() + control.recv()
            i = 0
            while time.monotonic() < end:
                writer.send(_SlowMessage(f"f{i}"))
                i += 1
            control.poll(60)
        except (OSError, EOFError):  # the reader or the check is gone
            pass


def _gather_run(
    learner: LearnerFunction,
    schedule: list[tuple[float, str, int, Any]],
    deadline: float,
    n_pipes: int = 3,
    follow_ups: tuple[tuple[int, float], ...] = (),
) -> tuple[Any, float, list[tuple[float, Any]], float, dict, list]:
    """Run the learner's gather in a spawned child on ``n_pipes`` pipes while following
    ``schedule``; then, in the same child, once for each ``(n, deadline)`` in ``follow_ups``,
    on ``n`` pipes that stay open and silent.

    ``schedule`` holds ``(seconds after the call, "send" or "close", pipe index, message)``,
    or ``(seconds, "flood", pipe index, duration)``: from then on, for ``duration`` seconds,
    a separate process sends on that pipe as fast as the pipe takes them (each 10 ms to read).
    A pipe the schedule never closes stays open, and silent if it never sends.
    Returns (outcome or None, seconds from the call to the result, [(sent at, message)],
    seconds from the call to the last close, facts about the call as the child saw it
    (``took``, ``cpu`` seconds, ``threads`` left running, ``changed`` list, ``closed``
    indexes), and [(outcome, facts) or None] for the follow-ups).
    """
    ctx = multiprocessing.get_context("spawn")
    pipes = [ctx.Pipe(duplex=False) for _ in range(n_pipes)]
    readers = [r for r, _ in pipes]
    writers = [w for _, w in pipes]
    silent = [[ctx.Pipe(duplex=False) for _ in range(n)] for n, _ in follow_ups]
    calls = [(readers, deadline)]
    calls += [([r for r, _ in group], d) for group, (_, d) in zip(silent, follow_ups, strict=True)]
    flooders = {}
    for _, action, index, _ in schedule:
        if action == "flood":
            control, theirs = ctx.Pipe()
            flooder = ctx.Process(target=_flood, args=(writers[index], theirs), name="flood")
            flooder.start()
            theirs.close()
            writers[index].close()  # the flooder holds that writer now
            flooders[index] = (flooder, control)
    results, report = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_run_gather, args=(learner, calls, report), name="gather")
    child.start()
    report.close()
    for conns, _ in calls:
        for r in conns:
            r.close()  # the child has them now
    outcome, took, sent, last_close, facts = None, float("inf"), [], 0.0, {"took": float("inf")}
    later: list[Any] = []
    try:
        for _, control in flooders.values():
            expect(control.poll(30) and control.recv() == "ready", "the check could not start")
        first = results.recv() if results.poll(30) else None
        if isinstance(first, tuple):
            fail(f"gather could not be defined in the child process: {first[1]}")
        expect(
            first == "started",
            "the process running gather did not start (read any traceback above)",
        )
        t0 = time.monotonic()
        for at, action, index, message in schedule:
            if results.poll(max(0.0, t0 + at - time.monotonic())):
                break  # gather returned: stop sending
            try:
                if action == "flood":
                    flooders[index][1].send(message)
                elif action == "send":
                    writers[index].send(message)
                    sent.append((time.monotonic() - t0, message))
                else:
                    writers[index].close()
                    last_close = time.monotonic() - t0
            except OSError:  # the child is gone already
                break
        # seconds after the call (the lateness itself is judged on the child's own timing)
        limit = min(deadline, schedule[-1][0] + 1.5) + 1.0
        if results.poll(max(0.2, t0 + limit - time.monotonic())):
            took = time.monotonic() - t0
            try:
                *outcome, facts = results.recv()
            except EOFError:
                fail("the process running gather died without a result (read the traceback)")
            outcome = tuple(outcome)
            for n, d in follow_ups:
                if not results.poll(1.0 if n == 0 else d + 1.5):  # none to wait for: at once
                    later.append(None)
                    break
                try:
                    *more, more_facts = results.recv()
                except EOFError:
                    later.append(None)
                    break
                later.append((tuple(more), more_facts))
    finally:
        for w in writers + [w for group in silent for _, w in group]:
            w.close()
        for _, control in flooders.values():
            control.close()
        finished = outcome is not None and len(later) == len(follow_ups) and None not in later
        stop_processes([child], timeout=5 if finished else 0.5)
        stop_processes([flooder for flooder, _ in flooders.values()], timeout=0.5)
        results.close()
    return outcome, took, sent, last_close, facts, later


def _in_thread(func: Any, *args: Any) -> Any:
    """Start ``func(*args)`` in a thread; return a function that waits for its result (or
    raises its exception). ``func`` must finish on its own (every wait in it has a timeout)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # re-raised by result()
            box["error"] = exc

    thread = threading.Thread(target=run, name="check-run", daemon=True)
    thread.start()

    def result() -> Any:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def _unpack(outcome: Any, where: str) -> tuple[list, int]:
    kind, value = outcome
    if kind == "error":
        fail(
            f"{where}: gather raised {value}"
            + (
                " (recv() raises EOFError once a sender has closed: catch it and drop that "
                "connection)"
                if value.startswith("EOFError")
                else ""
            )
        )
    expect(value is not None, "gather returned None: return (messages, still_open)")
    expect(
        isinstance(value, (tuple, list)) and len(value) == 2,
        f"{where}: gather should return a pair (messages, still_open), got {value!r}",
    )
    messages, still_open = value
    expect(
        isinstance(messages, list),
        f"{where}: messages should be a list, got {type(messages).__name__}",
    )
    expect(
        isinstance(still_open, numbers.Integral) and not isinstance(still_open, bool),
        f"{where}: still_open should be an int, got {still_open!r}",
    )
    return messages, still_open


def _side_effects(facts: dict, where: str, still_open: tuple[int, ...]) -> None:
    """Fail if the call left threads running, changed the caller's list, or closed a
    connection whose sender had not closed (indexes ``still_open``): they are the caller's."""
    expect(
        not facts["threads"],
        f"{where}: gather left {len(facts['threads'])} thread(s) running after it returned "
        "(a thread blocked in recv() takes messages that are no longer yours): receive in "
        "gather itself, or stop and join your threads before returning",
    )
    expect(
        not facts["changed"],
        f"{where}: gather changed the list of connections it was given: the list is the "
        "caller's; keep your own list of the ones still open",
    )
    closed = sorted(set(facts["closed"]) & set(still_open))
    expect(
        not closed,
        f"{where}: gather closed connection(s) {closed} whose senders had not closed: they "
        "belong to the caller, who may go on reading from them",
    )


def check_gather(gather: Any, *, timeout: float = 3.0) -> None:
    """Check ``gather(conns, deadline)`` -> ``(messages, still_open)``.

    The learner's ``gather`` runs in spawned children. Run 1, on three pipes: messages
    (None, 0 and a repeated one among them) arrive 0.15 s apart in a scripted order, then
    every sender closes long before the deadline: all messages in arrival order,
    ``still_open == 0``, returned at once, without keeping a CPU busy; then, in the same
    child, ``gather([], 8)`` must return ``([], 0)`` at once and ``gather([silent], 0.3)``
    ``([], 1)`` after 0.3 s. Run 2, on four pipes: one sender closes, one keeps sending
    without a pause (from a process of its own), one sends every 0.15 s, one stays open and
    silent: gather must return at the deadline (not later, not much sooner) with what
    arrived, in order, and ``still_open == 3``. Every call must leave no thread running, the
    caller's list unchanged and the still-open connections open. The runs go on side by side.
    """
    if not isinstance(gather, types.FunctionType):
        fail(f"define gather(conns, deadline) with def in the cell above (got {type(gather)})")
    try:
        learner = LearnerFunction(gather)
    except (TypeError, ValueError) as exc:
        fail(str(exc))

    # Run 1: everything closes well before the deadline. None, 0 and a repeat are messages.
    script = [(2, "c1"), (0, None), (1, "b1"), (2, 0), (0, "c1")]
    schedule = [(0.3 + 0.15 * i, "send", index, msg) for i, (index, msg) in enumerate(script)]
    schedule += [(1.1, "close", index, None) for index in range(3)]
    where = "with three senders that all closed after 1.1 s (deadline 8 s)"
    d = GATHER_DEADLINE
    # Nothing arrives during the first 0.7 s: the deadline counts from the call. From 0.8 s
    # on, pipe 0 never stops: messages are always waiting, right up to the deadline and on;
    # meanwhile pipe 2 gets a message every 0.15 s, and pipe 3 stays open and silent (a hung
    # sender). (Pipe 1's one message is sent before pipe 2's, so a reader that finds both
    # ready reads them in the order they arrived.)
    schedule2 = [(0.7, "send", 1, "z1"), (0.9, "close", 1, None), (0.8, "flood", 0, d + 0.4)]
    schedule2 += [(0.75 + 0.15 * i, "send", 2, f"x{i}") for i in range(int((d + 0.45) / 0.15))]
    schedule2.sort(key=lambda event: event[0])
    second = _in_thread(_gather_run, learner, schedule2, d, 4)  # runs meanwhile
    try:
        outcome, took, _, last_close, facts, later = _gather_run(
            learner, schedule, 8.0, 3, ((0, 8.0), (1, 0.3))
        )
    finally:
        outcome2, _, sent2, _, facts2, _ = second()
    expect(
        outcome is not None,
        f"gather did not return {where} within 2.5 s of the last close, so the check stopped "
        "it: on EOFError, drop that connection, and return when none is left",
    )
    messages, still_open = _unpack(outcome, where)
    expected = [msg for _, msg in script]
    expect(
        sorted(map(repr, messages)) == sorted(map(repr, expected)),
        f"{where}: expected the messages {expected} (in any order for now; every object "
        f"received is a message), got {messages!r}",
    )
    expect(
        messages == expected,
        f"{where}: the messages arrived in the order {expected}, you returned {messages}: "
        "use multiprocessing.connection.wait() to read whichever connection is ready",
    )
    expect(still_open == 0, f"{where}: every connection was closed, but still_open={still_open}")
    expect(
        took - last_close < 1.0,
        f"{where}: gather returned {took - last_close:.1f} s after the last sender closed; "
        "return as soon as every connection is closed, don't wait for the deadline",
    )
    expect(
        facts["cpu"] < 0.3 * facts["took"] + 0.1,
        f"{where}: gather used {facts['cpu']:.1f} s of CPU time in {facts['took']:.1f} s, "
        "though a message came only every 0.15 s: don't spin on poll(0), let wait() sleep "
        "until a connection is ready or the time is up",
    )
    _side_effects(facts, where, ())
    for (n, d_more), result in zip(((0, 8.0), (1, 0.3)), later + [None] * 2, strict=False):
        where_more = (
            "with no connections at all (deadline 8 s)"
            if n == 0
            else f"with one connection that stayed open and silent (deadline {d_more} s)"
        )
        expect(
            result is not None,
            f"gather did not return {where_more} within {1.0 if n == 0 else d_more + 1.5:.1f} s"
            + (
                ": with nothing to wait for, return ([], 0) at once"
                if n == 0
                else ": the deadline counts from the call, even if nothing ever arrives"
            ),
        )
        more, more_facts = result
        messages, still_open = _unpack(more, where_more)
        expect(
            messages == [] and still_open == n,
            f"{where_more}: expected ([], {n}), got ({messages!r}, {still_open!r})",
        )
        took_more = more_facts["took"]
        expect(
            (took_more < 0.5) if n == 0 else (d_more - 0.1 <= took_more <= d_more + 0.5),
            f"{where_more}: gather returned after {took_more:.2f} s"
            + (
                ": with nothing to wait for, return at once"
                if n == 0
                else ": wait until the deadline you are given, and no longer"
            ),
        )
        _side_effects(more_facts, where_more, tuple(range(n)))

    # Run 2: three senders never close before the deadline.
    where = (
        f"with a deadline of {d} s, one sender sending without a pause, one every 0.15 s, "
        "one that stayed open and silent, and one that closed"
    )
    outcome, sent = outcome2, sent2
    expect(
        outcome is not None,
        f"gather did not return {where} within {d + 1.0:.1f} s: stop at the deadline, counted "
        "from the call, however often messages keep arriving",
    )
    messages, still_open = _unpack(outcome, where)
    took = facts2["took"]
    expect(
        took >= d - 0.1,
        f"{where}: gather returned after {took:.2f} s, before the deadline, while "
        "connections were still open",
    )
    expect(
        took <= d + 0.5,
        f"{where}: gather returned {took - d:.1f} s after the deadline: the deadline counts "
        "from the call, not from the last message (give wait() only the time that is left)",
    )
    flooded = [isinstance(msg, str) and msg.startswith("f") for msg in messages]
    flood = [msg for msg, f in zip(messages, flooded, strict=True) if f]
    others = [msg for msg, f in zip(messages, flooded, strict=True) if not f]
    order = [msg for _, msg in sent]
    due = [msg for at, msg in sent if at < d - 0.3]
    expect(
        others == order[: len(others)] and flood == [f"f{i}" for i in range(len(flood))],
        f"{where}: expected the messages in the order they arrived: a prefix of {order[:4]}... "
        f"and 'f0', 'f1', ... from the busy sender; got {messages[:6]}"
        f"{'...' if len(messages) > 6 else ''}",
    )
    expect(
        len(others) >= len(due) and bool(flood),
        f"{where}: you returned {len(flood)} of the busy sender's messages and {others} of the "
        f"others', though {due} were sent well before the deadline: read whichever "
        "connection is ready, not one connection until it goes quiet",
    )
    expect(
        still_open == 3,
        f"{where}: three connections were still open at the deadline (one of them silent), "
        f"still_open={still_open}",
    )
    _side_effects(facts2, where, (0, 2, 3))
    passed(
        "messages in arrival order; returned at once when every sender had closed (or there "
        "was none), and at the deadline when some never did, counting the ones still open, "
        "silent ones too"
    )
