"""Checks for the exercises of chapter 05 (Pipes and connections)."""

from __future__ import annotations

import multiprocessing
import time
import types
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed, stop_processes

__all__ = ["check_calculator", "check_gather", "CALCULATOR_REQUESTS", "GATHER_SCRIPT"]

# (request, expected reply) pairs the calculator must answer, in this order.
CALCULATOR_REQUESTS = (
    (("add", 2, 3), 5),
    (("mul", 4, 5), 20),
    (("add", -1.5, 1.5), 0.0),
    (("div", 1, 2), ("error", "div")),  # unknown op: an error reply, and keep serving
    (("mul", 6, 7), 42),
)

# (connection index, message) in the order they are sent; then every sender closes.
GATHER_SCRIPT = ((2, "c1"), (0, "a1"), (1, "b1"), (2, "c2"), (0, "a2"))


def check_calculator(calculator: Any, *, timeout: float = 5.0) -> None:
    """Run ``calculator(conn)`` in a spawned child and talk to it over a Pipe.

    Requests are ``("add", a, b)`` and ``("mul", a, b)`` (reply: the number), any other
    op (reply: ``("error", op)``), and ``("stop",)`` (reply: ``"bye"``, then return).
    """
    if not isinstance(calculator, types.FunctionType):
        fail(f"define calculator(conn) with def in the cell above (got {type(calculator)})")
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=LearnerFunction(calculator), args=(theirs,), name="calculator")
    child.start()
    theirs.close()  # only the child holds that end now: if it dies, recv() gets EOFError
    try:
        for request, expected in (*CALCULATOR_REQUESTS, (("stop",), "bye")):
            exited = (
                f"the calculator exited before replying to {request!r} "
                "(read any traceback above; reply to every request, an unknown op with "
                "('error', op) rather than an exception, and return only after ('stop',))"
            )
            try:
                ours.send(request)
            except OSError:  # BrokenPipeError: the child is gone
                fail(exited)
            if not ours.poll(timeout):
                fail(
                    f"no reply to {request!r} within {timeout:.0f} s: send exactly one reply "
                    "per request (did you forget conn.send, or wait for something else?)"
                )
            try:
                reply = ours.recv()
            except (EOFError, OSError):  # closed, or reset: it exited with a request unread
                fail(exited)
            expect(
                reply == expected and type(reply) is type(expected),
                f"the reply to {request!r} was {reply!r}; expected {expected!r}",
            )
        child.join(timeout=timeout)
        expect(not child.is_alive(), "after replying 'bye' to ('stop',), return from calculator")
        expect(child.exitcode == 0, f"the calculator exited with code {child.exitcode}")
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        ours.close()
    passed(
        f"{len(CALCULATOR_REQUESTS) + 1} requests answered in order, an unknown op got an "
        "error reply, and the worker stopped cleanly"
    )


def _run_gather(gather: Any, conns: list, report: Any) -> None:
    """Child process: say "started", call ``gather(conns)``, send back the outcome."""
    with report:
        report.send("started")
        try:
            value = gather(conns)
        except BaseException as exc:  # reported as a hint, so nothing reaches stderr
            report.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            report.send(("value", value))


def check_gather(gather: Any, *, timeout: float = 5.0) -> None:
    """Check ``gather(conns)``: all messages, in arrival order, returning once all are closed.

    The learner's ``gather`` runs in a spawned child process, on the reading ends of three
    pipes. The parent sends on them in the order of :data:`GATHER_SCRIPT` (0.1 s apart),
    then closes them. Reading the connections one after another gets the wrong order; a
    ``gather`` that never returns (or spins) is stopped after ``timeout`` seconds.
    """
    if not isinstance(gather, types.FunctionType):
        fail(f"define gather(conns) with def in the cell above (got {type(gather).__name__})")
    try:
        learner = LearnerFunction(gather)
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    ctx = multiprocessing.get_context("spawn")
    pipes = [ctx.Pipe(duplex=False) for _ in range(3)]
    readers = [r for r, _ in pipes]
    writers = [w for _, w in pipes]
    results, report = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_run_gather, args=(learner, readers, report), name="gather")
    child.start()
    report.close()
    for r in readers:
        r.close()  # the child has them now: once it exits, our writers see a broken pipe
    outcome = None
    try:
        expect(
            results.poll(30) and results.recv() == "started",
            "the process running gather did not start (read any traceback above)",
        )
        for index, message in GATHER_SCRIPT:
            time.sleep(0.1)
            if results.poll(0):  # gather returned already: no need to send the rest
                break
            try:
                writers[index].send(message)
            except OSError:  # the child is gone already
                break
        time.sleep(0.1)
        for w in writers:
            w.close()
        if results.poll(timeout):
            try:
                outcome = results.recv()
            except EOFError:
                fail("the process running gather died without a result (read the traceback)")
    finally:
        for w in writers:
            w.close()
        stuck = stop_processes([child], timeout=0.5 if outcome is None else 5)
        results.close()
    expect(
        not stuck and outcome is not None,
        f"gather did not return within {timeout:.0f} s after every sender had closed its "
        "end, so the check stopped it: on EOFError, remove that connection from the list "
        "you wait on, and return when the list is empty",
    )
    kind, value = outcome
    if kind == "error":
        fail(
            f"gather raised {value} (recv() raises EOFError once a sender has closed: catch "
            "it and drop that connection)"
        )
    expected = [message for _, message in GATHER_SCRIPT]
    expect(value is not None, "gather returned None: return the list of messages received")
    expect(
        isinstance(value, list) and sorted(value) == sorted(expected),
        f"expected the messages {sorted(expected)} (in any order for now), got {value!r}",
    )
    expect(
        value == expected,
        f"all messages arrived but in the order {value}, not the order they were sent "
        f"{expected}: use multiprocessing.connection.wait(conns) to read whichever "
        "connection is ready, instead of one connection after another",
    )
    passed("every message received in arrival order, and gather returned when all were closed")
