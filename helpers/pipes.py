"""Workers for chapter 05 (Pipes and connections).

Every function here runs in a child process (or a thread), so it lives in a module that
spawn and forkserver children can import by name.
"""

from __future__ import annotations

import selectors
import socket
import threading
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
    "send_on_request",
    "serve_listener",
    "Eavesdropper",
    "collect_until_eof",
    "echo_upper_from",
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


def stats_server(conn: Any, other_end: Any = None) -> None:
    """Answer requests ``(op, payload)`` with ``("ok", result)`` or ``("error", reason)``.

    Operations: ``("words", text)`` -> number of words; ``("sum", numbers)`` -> their sum;
    ``("stop", None)`` -> ``("ok", "bye")`` and the server returns. A bad request gets an
    error reply and the server keeps going. If the client went away (``EOFError`` in
    ``recv()``, or ``BrokenPipeError`` when its reply is sent) the server returns too.
    ``other_end``, if given, is the client's end of the pipe: the server closes its copy
    first thing (under fork a child inherits it), so that EOF can arrive.
    """
    _check_conn(conn)
    if other_end is not None:
        _check_conn(other_end, "other_end")
        other_end.close()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:  # the client went away without saying stop
                return
            is_pair = isinstance(request, tuple) and len(request) == 2
            op, payload = request if is_pair else (None, None)
            try:
                if op is None:
                    reply = ("error", f"expected (op, payload), got {request!r}")
                elif op == "stop":
                    reply = ("ok", "bye")
                elif op == "words":
                    reply = ("ok", len(str(payload).split()))
                elif op == "sum":
                    reply = ("ok", sum(payload))
                else:
                    reply = ("error", f"unknown op {op!r}")
            except TypeError as exc:  # e.g. sum() of something that isn't numbers
                reply = ("error", str(exc))
            try:
                conn.send(reply)
            except BrokenPipeError:  # the client went away before its reply
                return
            if op == "stop":
                return


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


def send_on_request(control: Any, writer: Any, q: Any) -> None:
    """Send batches on request, through a pipe or a queue, until ``None`` arrives.

    Each request on ``control`` is ``("pipe" or "queue", count)``: send the integers
    ``0 ... count - 1``, then ``None``, through ``writer`` (a Pipe end) or ``q`` (a Queue).
    One process serves both, so the two can be timed in turns, side by side.
    """
    _check_conn(control, "control")
    _check_conn(writer, "writer")
    if not hasattr(q, "put"):
        raise TypeError(f"q must be a queue, got {type(q).__name__}")
    with control, writer:
        while (request := control.recv()) is not None:
            how, count = request
            if how not in ("pipe", "queue"):
                raise ValueError(f"expected 'pipe' or 'queue', got {how!r}")
            send = writer.send if how == "pipe" else q.put
            for i in range(_check_count(count, "count")):
                send(i)
            send(None)
    q.close()
    q.join_thread()


class Eavesdropper:
    """A loopback relay that records every byte passing through it, both ways.

    Connect to ``eavesdropper.address`` instead of ``target``: the first connection is
    forwarded to ``target`` (a ``(host, port)``), and ``recorded`` (bytes) holds what
    went through, as anyone on the network path could read it. Runs in a thread; use it
    as a context manager, or call :meth:`close`.
    """

    def __init__(self, target: tuple[str, int], timeout: float = 10.0):
        if not (isinstance(target, tuple) and len(target) == 2):
            raise TypeError(f"target must be a (host, port) tuple, got {target!r}")
        self._target = target
        self._timeout = _check_seconds(timeout, "timeout")
        self._data = bytearray()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(self._timeout)
        self.address = self._server.getsockname()[:2]
        self._thread = threading.Thread(target=self._relay, name="eavesdropper", daemon=True)
        self._thread.start()

    @property
    def recorded(self) -> bytes:
        return bytes(self._data)

    def _relay(self) -> None:
        try:
            client, _ = self._server.accept()
        except OSError:  # closed, or nobody connected in time
            return
        with client, socket.create_connection(self._target, timeout=self._timeout) as server:
            peer = {client: server, server: client}
            with selectors.DefaultSelector() as sel:
                for sock in peer:
                    sel.register(sock, selectors.EVENT_READ)
                while True:
                    events = sel.select(self._timeout)
                    if not events:
                        return
                    for key, _ in events:
                        data = key.fileobj.recv(65536)
                        if not data:  # one side closed: stop relaying
                            return
                        self._data += data
                        peer[key.fileobj].sendall(data)

    def close(self) -> None:
        """Stop listening and wait for the relay thread."""
        self._server.close()
        self._thread.join(timeout=self._timeout)

    def __enter__(self) -> Eavesdropper:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


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


def collect_until_eof(conn: Any, report: Any) -> None:
    """Receive until every copy of the other end is closed (``EOFError``); report the list.

    The list of messages received is sent on ``report`` (another connection).
    """
    _check_conn(conn)
    _check_conn(report, "report")
    got = []
    with conn, report:
        while True:
            try:
                got.append(conn.recv())
            except EOFError:
                break
        report.send(got)


def echo_upper_from(inbox: Any) -> None:
    """Receive a connection on ``inbox`` (a connection or a queue), then :func:`echo_upper` on it.

    The child is started with ``inbox`` only: the connection it serves arrives later, as a
    message.
    """
    if hasattr(inbox, "recv"):
        conn = inbox.recv()
    elif hasattr(inbox, "get"):
        conn = inbox.get(timeout=30)
    else:
        raise TypeError(f"inbox must be a connection or a queue, got {type(inbox).__name__}")
    echo_upper(conn)
