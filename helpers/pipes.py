"""Workers for chapter 05 (Pipes and connections).

Every function here runs in a child process (or a thread), so it lives in a module that
spawn and forkserver children can import by name.
"""

from __future__ import annotations

import time
from typing import Any

from helpers import timeline
from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds

__all__ = [
    "echo_upper",
    "send_chunks",
    "send_then_exit",
    "stats_server",
    "reply_after",
    "send_many",
    "send_many_queue",
    "serve_listener",
]


def _check_conn(conn: Any, name: str = "conn") -> Any:
    if not (hasattr(conn, "send") and hasattr(conn, "recv")):
        raise TypeError(
            f"{name} must be a multiprocessing Connection (one end of a Pipe), "
            f"got {type(conn).__name__}"
        )
    return conn


def echo_upper(conn: Any) -> None:
    """Receive strings and send each back upper-cased, until ``None`` arrives; then close."""
    _check_conn(conn)
    with conn:
        while True:
            text = conn.recv()
            if text is None:
                return
            conn.send(text.upper())


def send_chunks(conn: Any, chunks: Any) -> None:
    """Send each ``bytes`` chunk with ``send_bytes()`` (no pickling), then close the end."""
    _check_conn(conn)
    chunks = list(chunks)
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(f"chunks[{i}] must be bytes, got {type(chunk).__name__}")
    with conn:
        for chunk in chunks:
            conn.send_bytes(chunk)


def send_then_exit(conn: Any, messages: Any) -> None:
    """Send each message, then return: the process exits, closing its copy of ``conn``."""
    _check_conn(conn)
    for message in list(messages):
        conn.send(message)


def stats_server(conn: Any) -> None:
    """Answer requests ``(op, payload)`` with ``("ok", result)`` or ``("error", reason)``.

    Operations: ``("words", text)`` -> number of words; ``("sum", numbers)`` -> their sum;
    ``("stop", None)`` -> ``("ok", "bye")`` and the server returns. A bad request gets an
    error reply and the server keeps going; if the other end is closed (``EOFError``) it
    returns too.
    """
    _check_conn(conn)
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:  # the client went away without saying stop
                return
            if not (isinstance(request, tuple) and len(request) == 2):
                conn.send(("error", f"expected (op, payload), got {request!r}"))
                continue
            op, payload = request
            try:
                if op == "stop":
                    conn.send(("ok", "bye"))
                    return
                if op == "words":
                    conn.send(("ok", len(str(payload).split())))
                elif op == "sum":
                    conn.send(("ok", sum(payload)))
                else:
                    conn.send(("error", f"unknown op {op!r}"))
            except TypeError as exc:  # e.g. sum() of something that isn't numbers
                conn.send(("error", str(exc)))


def reply_after(conn: Any, label: str, seconds: float, start: Any = None) -> None:
    """Work for ``seconds`` (sleep, recorded as a span), send ``(label, span)``, close.

    If ``start`` (a ``multiprocessing.Barrier``) is given, wait there first (at most 30 s),
    so that all workers sharing it begin their work at the same moment.
    """
    _check_conn(conn)
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    seconds = _check_seconds(seconds)
    if start is not None and not hasattr(start, "wait"):
        raise TypeError(f"start must be a Barrier or None, got {type(start).__name__}")
    with conn:
        if start is not None:
            start.wait(timeout=30)
        with timeline.record(label) as rec:
            time.sleep(seconds)
        conn.send((label, rec.span))


def send_many(conn: Any, count: int) -> None:
    """Send the integers ``0 ... count - 1`` one message each, then ``None``; close."""
    _check_conn(conn)
    with conn:
        for i in range(_check_count(count, "count")):
            conn.send(i)
        conn.send(None)


def send_many_queue(q: Any, count: int) -> None:
    """Like :func:`send_many`, through a queue: put ``0 ... count - 1``, then ``None``."""
    if not hasattr(q, "put"):
        raise TypeError(f"q must be a queue, got {type(q).__name__}")
    for i in range(_check_count(count, "count")):
        q.put(i)
    q.put(None)


def serve_listener(report: Any, authkey: bytes, connections: int = 1) -> None:
    """Listen on a free loopback port, accept ``connections`` clients, echo their messages.

    The address (``('127.0.0.1', port)``) is sent on ``report`` first, so the parent
    knows where to connect. For each client: if the handshake fails (a wrong authkey)
    report ``("refused", reason)``; else reply ``("echo", message)`` to each message until
    the client sends ``"bye"`` or closes, and report ``("served", messages)``.
    """
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Listener

    _check_conn(report, "report")
    if not isinstance(authkey, bytes):
        raise TypeError(f"authkey must be bytes, got {type(authkey).__name__}")
    _check_count(connections, "connections")
    with report, Listener(("127.0.0.1", 0), authkey=authkey) as listener:
        report.send(listener.address)
        for _ in range(connections):
            try:
                conn = listener.accept()
            except AuthenticationError as exc:
                report.send(("refused", str(exc)))
                continue
            got = []
            with conn:
                while True:
                    try:
                        message = conn.recv()
                    except EOFError:
                        break
                    if message == "bye":
                        break
                    got.append(message)
                    conn.send(("echo", message))
            report.send(("served", got))
