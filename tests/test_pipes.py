"""Unit tests for helpers.pipes (chapter 05 workers) and helpers.checks.pipes."""

from __future__ import annotations

import multiprocessing
import os
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


def calc_right(conn):
    while True:
        op, *args = conn.recv()
        if op == "stop":
            conn.send("bye")
            return
        if op == "add":
            conn.send(args[0] + args[1])
        elif op == "mul":
            conn.send(args[0] * args[1])
        else:
            conn.send(("error", op))


def calc_crashes_on_unknown(conn):
    while True:
        op, *args = conn.recv()
        if op == "stop":
            conn.send("bye")
            return
        conn.send({"add": args[0] + args[1], "mul": args[0] * args[1]}[op])


def calc_never_stops(conn):
    while True:
        op, *args = conn.recv()
        if op == "stop":
            conn.send("bye")
            continue
        if op == "add":
            conn.send(args[0] + args[1])
        elif op == "mul":
            conn.send(args[0] * args[1])
        else:
            conn.send(("error", op))


def calc_wrong_math(conn):
    while True:
        op, *args = conn.recv()
        if op == "stop":
            conn.send("bye")
            return
        conn.send(args[0] + args[1] if op in ("add", "mul") else ("error", op))


def calc_skeleton(conn):
    return None


def test_check_calculator_passes_right_answer(capsys):
    check.check_calculator(calc_right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "calc, hint",
    [
        (calc_crashes_on_unknown, "exited before replying"),
        (calc_never_stops, "return from calculator"),
        (calc_wrong_math, "expected 20"),
        (calc_skeleton, "exited before replying"),
        (None, "define calculator"),
    ],
)
def test_check_calculator_fails_wrong_answers(calc, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_calculator(calc, timeout=3.0)


def gather_right(conns):
    pending, messages = list(conns), []
    while pending:
        for conn in wait(pending):
            try:
                messages.append(conn.recv())
            except EOFError:
                pending.remove(conn)
    return messages


def gather_one_by_one(conns):
    messages = []
    for conn in conns:
        while True:
            try:
                messages.append(conn.recv())
            except EOFError:
                break
    return messages


def gather_ignores_eof(conns):
    messages = []
    while True:
        for conn in wait(conns):
            messages.append(conn.recv())


def gather_swallows_eof(conns):
    messages = []
    while True:  # never drops a finished connection: wait() keeps returning it, and it spins
        for conn in wait(conns):
            try:
                messages.append(conn.recv())
            except EOFError:
                pass


def gather_skeleton(conns):
    return None


def test_check_gather_passes_right_answer(capsys):
    check.check_gather(gather_right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(
    "gather, hint",
    [
        (gather_one_by_one, "not the order they were sent"),
        (gather_ignores_eof, "raised EOFError"),
        (gather_swallows_eof, "did not return within"),
        (gather_skeleton, "returned None"),
        (42, "define gather"),
    ],
)
def test_check_gather_fails_wrong_answers(gather, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check.check_gather(gather, timeout=3.0)
    assert multiprocessing.active_children() == []  # a spinning gather was stopped


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
