"""Unit tests for helpers.pipes (chapter 05 workers) and helpers.checks.pipes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from multiprocessing.connection import Client, wait

import pytest

from helpers import pipes
from helpers.checks import ExerciseFailed
from helpers.checks import pipes as check

METHODS = multiprocessing.get_all_start_methods()


# ---- workers, run in the test process ----------------------------------------------------


def test_stats_server_protocol_in_process():
    client, server = multiprocessing.Pipe()
    for request in [("words", "one two three"), ("sum", [1, 2]), ("sum", "ab"), "junk", ("x", 1)]:
        client.send(request)
    client.send(("stop", None))
    pipes.stats_server(server)
    replies = [client.recv() for _ in range(6)]
    assert replies[:2] == [("ok", 3), ("ok", 3)]
    assert [status for status, _ in replies[2:5]] == ["error"] * 3
    assert replies[5] == ("ok", "bye")


def test_stats_server_stops_on_eof():
    client, server = multiprocessing.Pipe()
    client.close()
    pipes.stats_server(server)  # returns instead of hanging


def test_stats_server_returns_when_the_client_is_gone_before_its_reply():
    client, server = multiprocessing.Pipe()
    client.send(("sum", [1, 2]))
    client.close()  # the request is still there to read; the reply has nowhere to go
    pipes.stats_server(server)  # returns quietly instead of raising BrokenPipeError


def test_send_chunks_in_process():
    reader, writer = multiprocessing.Pipe(duplex=False)
    pipes.send_chunks(writer, [b"a", b"bc"])
    assert [reader.recv_bytes(), reader.recv_bytes()] == [b"a", b"bc"]


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: pipes.echo_upper("conn"), TypeError),
        (lambda: pipes.send_chunks(multiprocessing.Pipe()[1], ["text"]), TypeError),
        (lambda: pipes.reply_after(multiprocessing.Pipe()[1], 1, 0.1), TypeError),
        (lambda: pipes.reply_after(multiprocessing.Pipe()[1], "x", -1), ValueError),
        (lambda: pipes.reply_after(multiprocessing.Pipe()[1], "x", 0.1, "go"), TypeError),
        (lambda: pipes.serve_listener(multiprocessing.Pipe()[1], "key"), TypeError),
    ],
)
def test_workers_validate_arguments(call, exc):
    with pytest.raises(exc):
        call()


# ---- the lessons, in real processes under every start method ------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_dead_child_poll_then_eof_after_closing_our_copy(method):
    ctx = multiprocessing.get_context(method)
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=pipes.send_then_exit, args=(child_end, ["bye"]))
    p.start()
    p.join(timeout=10)
    assert p.exitcode == 0
    assert parent_end.recv() == "bye"
    assert not parent_end.poll(0.3)  # our copy of child_end keeps the pipe open
    child_end.close()
    with pytest.raises(EOFError):
        parent_end.recv()
    parent_end.close()


@pytest.mark.parametrize("method", METHODS)
def test_wait_collects_every_reply_in_finishing_order(method):
    ctx = multiprocessing.get_context(method)
    plan = [("slow", 0.4), ("fast", 0.0), ("medium", 0.2)]
    start = ctx.Barrier(len(plan))  # they start working together, so finish in a known order
    readers, procs = [], []
    for label, seconds in plan:
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=pipes.reply_after, args=(w, label, seconds, start))
        p.start()
        w.close()
        readers.append(r)
        procs.append(p)
    labels, spans = [], {}
    while readers:
        ready = wait(readers, timeout=10)
        assert ready
        for conn in ready:
            try:
                label, span = conn.recv()
            except EOFError:
                readers.remove(conn)
                conn.close()
                continue
            labels.append(label)
            spans[label] = span
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    assert labels == ["fast", "medium", "slow"]
    # The barrier lined them up: every span starts within a moment of the others.
    starts = [span.start for span in spans.values()]
    assert max(starts) - min(starts) < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_listener_accepts_right_key_and_refuses_wrong_key(method):
    ctx = multiprocessing.get_context(method)
    status, status_writer = ctx.Pipe(duplex=False)
    server = ctx.Process(target=pipes.serve_listener, args=(status_writer, b"key", 2))
    server.start()
    status_writer.close()
    try:
        assert status.poll(10)
        address = status.recv()
        assert address[0] == "127.0.0.1"
        with Client(address, authkey=b"key") as conn:
            conn.send("hi")
            assert conn.recv() == ("echo", "hi")
        assert status.poll(10) and status.recv() == ("served", ["hi"])
        with pytest.raises(multiprocessing.AuthenticationError):
            Client(address, authkey=b"wrong")
        assert status.poll(10) and status.recv()[0] == "refused"
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join()
    assert server.exitcode == 0


# ---- exercise checks: pass on the right answer, fail on wrong ones -------------------------


def kv_right(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the client went away: nobody is left to serve
            return
        except Exception as exc:  # recv() unpickles: bytes that don't unpickle raise here
            request = None
            reply = ("error", f"can't unpickle the request: {type(exc).__name__}: {exc}")
        else:
            reply = ("error", f"a request is a non-empty tuple, got {request!r}")
        stop = False
        if isinstance(request, tuple) and request:
            op, args = request[0], request[1:]
            if not isinstance(op, str):  # compare strings only: == on other types can raise
                op = None
            try:
                if op == "set" and len(args) == 2:
                    store[args[0]] = args[1]
                    reply = ("ok", None)
                elif op == "get" and len(args) == 1:
                    key = args[0]
                    reply = ("ok", store[key]) if key in store else ("error", f"no key {key!r}")
                elif op == "stop" and not args:
                    reply, stop = ("ok", "bye"), True
                else:
                    reply = ("error", f"can't serve {request!r}")
            except TypeError as exc:  # e.g. a list as a key: it can't be a dict key
                reply = ("error", str(exc))
        try:
            conn.send(reply)
        except OSError:  # BrokenPipeError: the client left before its reply came
            return
        if stop:
            return


def kv_right_match(conn):
    store = {}
    with conn:
        try:
            while True:
                try:
                    request = conn.recv()
                except EOFError:
                    break
                except Exception:  # recv() unpickles: garbage raises here
                    conn.send(("error", "unreadable request"))
                    continue
                match request:
                    case tuple(("set", key, value)):
                        try:
                            store[key] = value
                            conn.send(("ok", None))
                        except TypeError:
                            conn.send(("error", "unhashable key"))
                    case tuple(("get", key)):
                        try:
                            conn.send(("ok", store[key]))
                        except (KeyError, TypeError) as exc:
                            conn.send(("error", f"bad key: {exc!r}"))
                    case tuple(("stop",)):
                        conn.send(("ok", "bye"))
                        break
                    case _:
                        conn.send(("error", "malformed request"))
        except OSError:  # the client left before reading a reply
            return


def kv_unpacks_anything(conn):  # treats a string or a list as a request
    store = {}
    while True:
        try:
            op, *args = conn.recv()
        except EOFError:
            return
        except (TypeError, ValueError):
            conn.send(("error", "bad request"))
            continue
        try:
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                conn.send(("ok", store[args[0]]) if args[0] in store else ("error", "missing"))
            elif op == "stop":
                conn.send(("ok", "bye"))
                return
            else:
                conn.send(("error", f"unknown {op}"))
        except TypeError:
            conn.send(("error", "bad key"))


def kv_get_none_is_missing(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if not (isinstance(request, tuple) and request):
            conn.send(("error", "not a tuple"))
            continue
        try:
            if request[0] == "set" and len(request) == 3:
                store[request[1]] = request[2]
                conn.send(("ok", None))
            elif request[0] == "get" and len(request) == 2:
                value = store.get(request[1])
                conn.send(("error", "missing") if value is None else ("ok", value))
            elif request == ("stop",):
                conn.send(("ok", "bye"))
                return
            else:
                conn.send(("error", "bad request"))
        except TypeError:
            conn.send(("error", "bad key"))


def kv_crashes_on_unhashable(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if not (isinstance(request, tuple) and request):
            conn.send(("error", "not a tuple"))
        elif request[0] == "set" and len(request) == 3:
            store[request[1]] = request[2]
            conn.send(("ok", None))
        elif request[0] == "get" and len(request) == 2:
            key = request[1]
            conn.send(("ok", store[key]) if key in store else ("error", "missing"))
        elif request == ("stop",):
            conn.send(("ok", "bye"))
            return
        else:
            conn.send(("error", "bad request"))


def kv_catches_everything(conn):  # replies to EOFError too: the send then fails
    store = {}
    while True:
        try:
            request = conn.recv()
            if not (isinstance(request, tuple) and request):
                raise ValueError("not a tuple")
            if request[0] == "set" and len(request) == 3:
                store[request[1]] = request[2]
                conn.send(("ok", None))
            elif request[0] == "get" and len(request) == 2:
                conn.send(("ok", store[request[1]]))
            elif request == ("stop",):
                conn.send(("ok", "bye"))
                return
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", repr(exc)))


def kv_loops_on_eof(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            time.sleep(0.05)
            continue
        except Exception:  # bytes that don't unpickle
            conn.send(("error", "unreadable"))
            continue
        if not (isinstance(request, tuple) and request):
            conn.send(("error", "not a tuple"))
            continue
        try:
            if request[0] == "set" and len(request) == 3:
                store[request[1]] = request[2]
                conn.send(("ok", None))
            elif request[0] == "get" and len(request) == 2:
                key = request[1]
                conn.send(("ok", store[key]) if key in store else ("error", "missing"))
            elif request == ("stop",):
                conn.send(("ok", "bye"))
                return
            else:
                conn.send(("error", "bad request"))
        except TypeError:
            conn.send(("error", "bad key"))


def kv_skeleton(conn):
    return None


@pytest.mark.parametrize("server", [kv_right, kv_right_match])
def test_check_kv_server_passes_right_answers(server, capsys):
    check.check_kv_server(server)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "server, hint",
    [
        (kv_unpacks_anything, "expected \\('error', reason\\)"),
        (kv_get_none_is_missing, "expected \\('ok', None\\)"),
        (kv_crashes_on_unhashable, "exited \\(or crashed\\)"),
        (kv_catches_everything, "exited with code 1"),
        (kv_loops_on_eof, "still running"),
        (kv_skeleton, "exited \\(or crashed\\)"),
        (None, "define kv_server"),
    ],
)
def test_check_kv_server_fails_wrong_answers(server, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_kv_server(server, timeout=2.0)
    assert multiprocessing.active_children() == []


def gather_right(conns, deadline):
    end = time.monotonic() + deadline
    pending, messages = list(conns), []
    while pending:
        left = end - time.monotonic()
        if left <= 0:
            break
        for conn in wait(pending, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                pending.remove(conn)
    return messages, len(pending)


def gather_right_polling(conns, deadline):
    end = time.monotonic() + deadline
    open_conns, messages = list(conns), []
    while open_conns and time.monotonic() < end:
        for conn in list(open_conns):
            if conn.poll(0.01):
                try:
                    messages.append(conn.recv())
                except EOFError:
                    open_conns.remove(conn)
    return [messages, len(open_conns)]


def gather_timeout_per_wait(conns, deadline):
    pending, messages = list(conns), []
    while pending:
        ready = wait(pending, timeout=deadline)
        if not ready:
            break
        for conn in ready:
            try:
                messages.append(conn.recv())
            except EOFError:
                pending.remove(conn)
    return messages, len(pending)


def gather_sleeps_to_deadline(conns, deadline):
    time.sleep(deadline)
    pending, messages = list(conns), []
    for conn in list(pending):
        try:
            while conn.poll():
                messages.append(conn.recv())
        except EOFError:
            pending.remove(conn)
    return messages, len(pending)


def gather_one_by_one(conns, deadline):
    end = time.monotonic() + deadline
    messages, still_open = [], 0
    for conn in conns:
        while True:
            left = end - time.monotonic()
            if left <= 0 or not conn.poll(left):
                still_open += 1
                break
            try:
                messages.append(conn.recv())
            except EOFError:
                break
    return messages, still_open


def gather_deadline_from_first_message(conns, deadline):
    pending, messages, end = list(conns), [], None
    while pending:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            break
        for conn in wait(pending, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                pending.remove(conn)
                continue
            if end is None:
                end = time.monotonic() + deadline
    return messages, len(pending)


def gather_counts_all(conns, deadline):
    messages, _ = gather_right(conns, deadline)
    return messages, len(conns)


def gather_skeleton(conns, deadline):
    return None


@pytest.mark.parametrize("gather", [gather_right, gather_right_polling])
def test_check_gather_passes_right_answers(gather, capsys):
    check.check_gather(gather)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "gather, hint",
    [
        (gather_timeout_per_wait, "did not return"),
        (gather_sleeps_to_deadline, "did not return"),
        (gather_one_by_one, "not the order|use multiprocessing.connection.wait"),
        (gather_counts_all, "still_open=3"),
        (gather_deadline_from_first_message, "after the deadline|did not return"),
        (gather_skeleton, "returned None"),
        (42, "define gather"),
    ],
)
def test_check_gather_fails_wrong_answers(gather, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_gather(gather)
    assert multiprocessing.active_children() == []


def test_check_gather_fails_fast_on_the_skeleton():
    start = time.monotonic()
    with pytest.raises(ExerciseFailed):
        check.check_gather(gather_skeleton)
    assert time.monotonic() - start < 4


# ---- chapter 05 corrections: inherited ends, eavesdropping, side-by-side timing ----------


@pytest.mark.parametrize("method", METHODS)
def test_stats_server_closes_the_client_end_so_eof_arrives(method):
    ctx = multiprocessing.get_context(method)
    client_end, server_end = ctx.Pipe()
    server = ctx.Process(target=pipes.stats_server, args=(server_end, client_end))
    server.start()
    server_end.close()
    client_end.close()
    server.join(timeout=10)
    assert server.exitcode == 0


@pytest.mark.skipif("fork" not in METHODS, reason="needs fork")
def test_forked_stats_server_without_the_client_end_hangs():
    ctx = multiprocessing.get_context("fork")
    client_end, server_end = ctx.Pipe()
    server = ctx.Process(target=pipes.stats_server, args=(server_end,))
    server.start()
    server_end.close()
    client_end.close()
    server.join(timeout=0.5)
    hung = server.is_alive()
    server.terminate()
    server.join()
    assert hung


def test_stats_server_validates_other_end():
    a, b = multiprocessing.Pipe()
    with pytest.raises(TypeError, match="other_end"):
        pipes.stats_server(a, other_end=42)
    a.close()
    b.close()


def test_eavesdropper_records_an_authenticated_conversation():
    key = os.urandom(16)
    status, writer = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=pipes.serve_listener, args=(writer, key, 1))
    server.start()
    writer.close()
    address = status.recv()
    with pipes.Eavesdropper(address) as relay:
        with Client(relay.address, authkey=key) as conn:
            conn.send("meet at noon")
            assert conn.recv() == ("echo", "meet at noon")
            conn.send("bye")
        assert status.recv() == ("served", ["meet at noon"])
    server.join(timeout=10)
    status.close()
    assert b"meet at noon" in relay.recorded and key not in relay.recorded


def test_eavesdropper_validates_and_closes_unused():
    with pytest.raises(TypeError, match="target"):
        pipes.Eavesdropper("localhost")
    relay = pipes.Eavesdropper(("127.0.0.1", 9), timeout=1)
    relay.close()
    assert relay.recorded == b""


def test_send_on_request_serves_pipe_and_queue_in_turns():
    control, control_child = multiprocessing.Pipe()
    reader, writer = multiprocessing.Pipe(duplex=False)
    q = multiprocessing.Queue()
    sender = multiprocessing.Process(target=pipes.send_on_request, args=(control_child, writer, q))
    sender.start()
    control_child.close()
    writer.close()
    for how, receive in (("pipe", reader.recv), ("queue", lambda: q.get(timeout=10))) * 2:
        control.send((how, 5))
        assert [receive() for _ in range(6)] == [0, 1, 2, 3, 4, None]
    control.send(None)
    sender.join(timeout=10)
    assert sender.exitcode == 0
    control.close()
    reader.close()
    q.close()
    q.join_thread()


def test_send_on_request_validates():
    a, b = multiprocessing.Pipe()
    with pytest.raises(TypeError, match="q must be a queue"):
        pipes.send_on_request(a, b, None)
    a.close()
    b.close()


# ---- pipe ends handed to siblings, and connections sent as messages ----------------------


def test_collect_until_eof_and_echo_upper_from_in_process():
    a, b = multiprocessing.Pipe()
    report_reader, report_writer = multiprocessing.Pipe(duplex=False)
    a.send("x")
    a.close()
    pipes.collect_until_eof(b, report_writer)
    assert report_reader.recv() == ["x"]
    inbox, inbox_end = multiprocessing.Pipe()
    mine, theirs = multiprocessing.Pipe()
    inbox.send(theirs)
    mine.send("hi")
    mine.send(None)
    pipes.echo_upper_from(inbox_end)
    assert mine.recv() == "HI"
    with pytest.raises(TypeError, match="inbox"):
        pipes.echo_upper_from("not a connection")
    with pytest.raises(TypeError, match="report"):
        pipes.collect_until_eof(mine, "not a connection")


@pytest.mark.parametrize("method", METHODS)
def test_siblings_share_a_pipe_and_a_sent_connection_works(method):
    ctx = multiprocessing.get_context(method)
    left, right = ctx.Pipe()
    report, report_writer = ctx.Pipe(duplex=False)
    sender = ctx.Process(target=pipes.send_then_exit, args=(left, [1, 2]))
    sender.start()
    left.close()
    receiver = ctx.Process(target=pipes.collect_until_eof, args=(right, report_writer))
    receiver.start()
    right.close()
    report_writer.close()
    assert report.poll(20) and report.recv() == [1, 2]
    sender.join(timeout=10)
    receiver.join(timeout=10)
    assert sender.exitcode == receiver.exitcode == 0

    carrier = ctx.Queue()
    server = ctx.Process(target=pipes.echo_upper_from, args=(carrier,))
    server.start()
    mine, theirs = ctx.Pipe()
    carrier.put(theirs)
    mine.send("q")
    assert mine.poll(20) and mine.recv() == "Q"
    theirs.close()
    mine.send(None)
    server.join(timeout=10)
    assert server.exitcode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="the sizes are Linux defaults")
def test_one_way_pipe_holds_less_than_the_duplex_socket_pair():
    def fits(duplex, size):
        reader, writer = multiprocessing.Pipe(duplex=duplex)
        t = threading.Thread(target=writer.send_bytes, args=(bytes(size),))
        t.start()
        t.join(0.5)
        fitted = not t.is_alive()
        if not fitted:
            reader.recv_bytes()
        t.join()
        reader.close()
        writer.close()
        return fitted

    assert fits(False, 32_000) and not fits(False, 100_000)
    assert fits(True, 150_000) and not fits(True, 400_000)
