"""Red team, round 2, for chapter 05's exercise checks (tricks not in test_redteam_05.py).

Written blind (before the checks and solutions were read), then run through the checks
exactly as the notebook's check cells call them: each answer's source is sent to a spawned
child. Wrong answers must raise ``ExerciseFailed`` with a hint; right ones must pass.
"""

import collections.abc
import queue
import sys
import threading
import time
from multiprocessing.connection import wait

import numpy as np
import pytest
from redteam import expect

from helpers.checks import pipes as check

# --- Exercise 1: kv_server(conn) ------------------------------------------------------
# Each wrong answer is a careful server (it survives garbage bytes, unhashable keys and a
# client that leaves) with one defect, named by its id.


def kv_hashable_abc(conn):
    """Validates keys with isinstance(key, Hashable): a tuple holding a list passes, then
    crashes."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                if isinstance(request[1], collections.abc.Hashable):
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                else:
                    reply = ("error", "bad key: unhashable")
            elif request[0] == "get" and len(request) == 2:
                if not isinstance(request[1], collections.abc.Hashable):
                    reply = ("error", "bad key: unhashable")
                else:
                    value = store.get(request[1], missing)
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_unhashable_op(conn):
    """Looks the op up in a dict of arities first: an unhashable op crashes it."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif {"set": 3, "get": 2, "stop": 1}.get(request[0]) != len(request):
                reply = ("error", "unknown op or wrong number of items")
            elif request[0] == "set":
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_op_substring(conn):
    """op in ('set') is a substring test (no comma, no tuple): 's', 'et', '' act as set."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif isinstance(request[0], str) and request[0] in ("set") and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif isinstance(request[0], str) and request[0] in ("get") and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_set_extra_ignored(conn):
    """A set with too many items stores the third and ignores the rest."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) >= 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_str_keys(conn):
    """Stores under str(key): 1 and '1' are the same key."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    hash(request[1])
                    store[str(request[1])] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    hash(request[1])
                    value = store.get(str(request[1]), missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_serves_200(conn):
    """Serves at most 200 requests, then returns."""
    store = {}
    missing = object()
    with conn:
        for _ in range(200):
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_sys_exit_on_eof(conn):
    """Leaves with sys.exit(message) when the client goes away: exit code 1, not quiet."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                sys.exit("client went away")
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                sys.exit("client went away")
            if stop:
                return


def kv_stop_accepts_extra(conn):
    """Stops on any request whose op is 'stop', e.g. ('stop', None) as in stats_server."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop":
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_empty_reason(conn):
    """Every error reply carries an empty reason."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            if reply[0] == "error":
                reply = ("error", "")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


def kv_greets_first(conn):
    """Sends a greeting before serving: every reply is one behind."""
    store = {}
    missing = object()
    with conn:
        conn.send(("ok", "hello"))
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that aren't a pickle, and the like
                request, reply = None, ("error", f"can't unpickle the request: {exc}")
            else:
                reply = None
            stop = False
            if reply is not None:
                pass
            elif not isinstance(request, tuple) or not request:
                reply = ("error", "a request is a non-empty tuple")
            elif request[0] == "set" and len(request) == 3:
                try:
                    store[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
            elif request[0] == "get" and len(request) == 2:
                try:
                    value = store.get(request[1], missing)
                except TypeError as exc:
                    reply = ("error", f"bad key: {exc}")
                else:
                    reply = ("error", "key never set") if value is missing else ("ok", value)
            elif request[0] == "stop" and len(request) == 1:
                reply, stop = ("ok", "bye"), True
            else:
                reply = ("error", f"unknown request {request!r}")
            try:
                conn.send(reply)
            except BrokenPipeError:
                return
            if stop:
                return


# right answers


def kv_right_match_tuple(conn):
    """Pattern matching, guarded to tuples; broad except around recv and send."""
    store = {}
    missing = object()
    with conn:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # a message that can't be unpickled
                request = exc
            if not isinstance(request, tuple):
                reply = ("error", f"a request is a tuple, got {type(request).__name__}")
            else:
                match request:
                    case ("set", key, value):
                        try:
                            store[key] = value
                            reply = ("ok", None)
                        except TypeError as exc:
                            reply = ("error", f"bad key: {exc}")
                    case ("get", key):
                        try:
                            found = store.get(key, missing)
                        except TypeError as exc:
                            found, reply = missing, ("error", f"bad key: {exc}")
                        else:
                            reply = ("error", "never set") if found is missing else ("ok", found)
                    case ("stop",):
                        reply = ("ok", "bye")
                    case _:
                        reply = ("error", "unknown request (want set/get/stop with their items)")
            try:
                conn.send(reply)
            except (BrokenPipeError, ConnectionResetError):
                return
            except Exception as exc:  # the reply can't be pickled
                try:
                    conn.send(("error", f"can't send the reply: {exc}"))
                except OSError:
                    return
            if request == ("stop",):
                return


def kv_right_wait_loop(conn):
    """Waits with multiprocessing.connection.wait in a loop, dict of lambdas, EAFP."""
    store = {}
    ops = {
        "set": (3, lambda k, v: (store.__setitem__(k, v), ("ok", None))[1]),
        "get": (2, lambda k: ("ok", store[k])),
        "stop": (1, lambda: ("ok", "bye")),
    }
    try:
        while True:
            if not wait([conn], timeout=5):
                continue
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception:
                request = None
            try:
                if type(request) is not tuple or len(request) == 0:
                    raise ValueError("requests are non-empty tuples")
                if not isinstance(request[0], str) or request[0] not in ops:
                    raise ValueError(f"unknown op {request[0]!r}")
                arity, fn = ops[request[0]]
                if len(request) != arity:
                    raise ValueError(f"{request[0]} takes {arity - 1} argument(s)")
                reply = fn(*request[1:])
            except KeyError as exc:
                reply = ("error", f"no value for key {exc}")
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                conn.send(reply)
            except OSError:
                return
            if reply == ("ok", "bye") and request == ("stop",):
                return
    finally:
        conn.close()


def kv_right_classic(conn):
    """Plain if/elif with hash() validation; sentinel for missing keys; catches OSError."""
    data = dict()
    NOTHING = object()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        except Exception:
            msg = NOTHING
        reply = ("error", "not a valid request")
        stop = False
        if isinstance(msg, tuple) and len(msg) >= 1:
            op = msg[0]
            if op == "set" and len(msg) == 3:
                try:
                    hash(msg[1])
                except TypeError:
                    reply = ("error", "key is not hashable")
                else:
                    data[msg[1]] = msg[2]
                    reply = ("ok", None)
            elif op == "get" and len(msg) == 2:
                try:
                    hash(msg[1])
                except TypeError:
                    reply = ("error", "key is not hashable")
                else:
                    value = data.get(msg[1], NOTHING)
                    reply = ("error", "key never set") if value is NOTHING else ("ok", value)
            elif op == "stop" and len(msg) == 1:
                reply, stop = ("ok", "bye"), True
            elif op in ("set", "get", "stop") if isinstance(op, str) else False:
                reply = ("error", f"wrong number of items for {op}")
            else:
                reply = ("error", "unknown op")
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionError):
            break
        except Exception:
            try:
                conn.send(("error", "reply could not be pickled"))
            except Exception:
                break
        if stop:
            break
    conn.close()


KV_WRONG = {
    "tuple-key-holding-a-list": kv_hashable_abc,
    "unhashable-op-crashes-dispatch": kv_unhashable_op,
    "op-substring-test": kv_op_substring,
    "set-ignores-extra-items": kv_set_extra_ignored,
    "keys-stored-as-str": kv_str_keys,
    "serves-at-most-200-requests": kv_serves_200,
    "sys-exit-when-client-leaves": kv_sys_exit_on_eof,
    "stop-with-extra-items": kv_stop_accepts_extra,
    "empty-reason": kv_empty_reason,
    "greeting-before-serving": kv_greets_first,
}
KV_RIGHT = {
    "match-guarded-to-tuples": kv_right_match_tuple,
    "wait-loop-lambda-table": kv_right_wait_loop,
    "hash-validation-sentinel": kv_right_classic,
}


@pytest.mark.parametrize("answer", KV_WRONG.values(), ids=KV_WRONG.keys())
def test_kv_server_rejects_round2(answer):
    expect(check.check_kv_server, answer, "wrong")


@pytest.mark.parametrize("answer", KV_RIGHT.values(), ids=KV_RIGHT.keys())
def test_kv_server_accepts_round2(answer):
    expect(check.check_kv_server, answer, "correct")


# --- Exercise 2: gather(conns, deadline) ----------------------------------------------


def gather_fixed_deadline(conns, deadline):
    """Ignores its deadline: always 1.2 s."""
    end = time.monotonic() + 1.2
    open_conns, messages = list(conns), []
    while open_conns:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for conn in wait(open_conns, remaining):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def gather_assumes_three(conns, deadline):
    """Unpacks exactly three connections."""
    a, b, c = conns
    end = time.monotonic() + deadline
    open_conns, messages = [a, b, c], []
    while open_conns:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for conn in wait(open_conns, remaining):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def gather_ignores_silent(conns, deadline):
    """Counts only connections that sent something: a hung sender that never sent is 'closed'."""
    end = time.monotonic() + deadline
    open_conns, messages, talked = list(conns), [], set()
    while open_conns:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for conn in wait(open_conns, remaining):
            try:
                messages.append(conn.recv())
                talked.add(id(conn))
            except EOFError:
                open_conns.remove(conn)
    return messages, sum(1 for c in open_conns if id(c) in talked)


def gather_none_is_end(conns, deadline):
    """Treats a None message as 'this sender is done' (like section 7's sentinel)."""
    end = time.monotonic() + deadline
    open_conns, messages = list(conns), []
    while open_conns:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for conn in wait(open_conns, remaining):
            try:
                msg = conn.recv()
            except EOFError:
                open_conns.remove(conn)
                continue
            if msg is None:
                open_conns.remove(conn)
            else:
                messages.append(msg)
    return messages, len(open_conns)


def gather_mutates_conns(conns, deadline):
    """Removes closed connections from the caller's own list."""
    end = time.monotonic() + deadline
    messages = []
    while conns:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for conn in wait(conns, remaining):
            try:
                messages.append(conn.recv())
            except EOFError:
                conns.remove(conn)
    return messages, len(conns)


def gather_reader_threads(conns, deadline):
    """A daemon thread per connection feeds a queue; at the deadline they are left
    blocked in recv(), and will swallow messages the caller reads later."""
    end = time.monotonic() + deadline
    q = queue.Queue()

    def pump(conn):
        while True:
            try:
                q.put((conn, conn.recv()))
            except (EOFError, OSError):
                q.put((conn, EOFError))
                return

    for conn in conns:
        threading.Thread(target=pump, args=(conn,), daemon=True).start()
    messages, open_count = [], len(conns)
    while open_count:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        try:
            _, msg = q.get(timeout=remaining)
        except queue.Empty:
            break
        if msg is EOFError:
            open_count -= 1
        else:
            messages.append(msg)
    return messages, open_count


def gather_busy_poll(conns, deadline):
    """Spins on poll(0) until the deadline."""
    end = time.monotonic() + deadline
    open_conns, messages = list(conns), []
    while open_conns and time.monotonic() < end:
        for conn in list(open_conns):
            if conn.poll(0):
                try:
                    messages.append(conn.recv())
                except EOFError:
                    open_conns.remove(conn)
    return messages, len(open_conns)


# right answers


def gather_right_numpy_count(conns, deadline):
    """Counts with a NumPy boolean array; the count is a numpy.int64."""
    t_end = time.monotonic() + float(deadline)
    alive = np.ones(len(conns), dtype=bool)
    messages = []
    while alive.any():
        left = t_end - time.monotonic()
        if left <= 0:
            break
        ready = wait([c for c, a in zip(conns, alive, strict=True) if a], timeout=left)
        for c in ready:
            try:
                messages.append(c.recv())
            except EOFError:
                alive[conns.index(c)] = False
    return messages, np.sum(alive)


def gather_right_threads_joined(conns, deadline):
    """A thread per connection (short polls, a stop flag), all joined before returning."""
    end = time.perf_counter() + deadline
    arrivals = queue.Queue()
    stop = threading.Event()
    closed_mark = object()

    def pump(conn):
        while not stop.is_set():
            if conn.poll(0.01):
                try:
                    arrivals.put(conn.recv())
                except EOFError:
                    arrivals.put(closed_mark)
                    return

    threads = [threading.Thread(target=pump, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    messages, closed = [], 0
    try:
        while closed < len(conns):
            remaining = end - time.perf_counter()
            if remaining <= 0:
                break
            try:
                item = arrivals.get(timeout=remaining)
            except queue.Empty:
                break
            if item is closed_mark:
                closed += 1
            else:
                messages.append(item)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return messages, len(conns) - closed


GATHER_WRONG = {
    "fixed-1.2s-deadline": gather_fixed_deadline,
    "unpacks-exactly-three": gather_assumes_three,
    "silent-sender-not-counted": gather_ignores_silent,
    "none-message-ends-sender": gather_none_is_end,
    "mutates-callers-list": gather_mutates_conns,
    "reader-threads-left-behind": gather_reader_threads,
    "busy-poll": gather_busy_poll,
}
GATHER_RIGHT = {
    "numpy-bool-mask-count": gather_right_numpy_count,
    "threads-polling-joined": gather_right_threads_joined,
}


@pytest.mark.parametrize("answer", GATHER_WRONG.values(), ids=GATHER_WRONG.keys())
def test_gather_rejects_round2(answer):
    expect(check.check_gather, answer, "wrong")


@pytest.mark.parametrize("answer", GATHER_RIGHT.values(), ids=GATHER_RIGHT.keys())
def test_gather_accepts_round2(answer):
    expect(check.check_gather, answer, "correct")
