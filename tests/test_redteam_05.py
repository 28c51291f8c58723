"""Red team for chapter 05's exercise checks: wrong answers must fail, right ones pass.

Each case is an answer a learner might write, run through the check exactly as the
notebook's check cell calls it (the check sends the function's source to a spawned
child). Wrong answers must raise ``ExerciseFailed``; right ones must pass. Every call runs
under a watchdog, so a check that hangs fails the test instead of the suite.
"""

import pickle
import selectors
import time
from multiprocessing.connection import wait

import pytest
from redteam import expect

from helpers.checks import pipes as check

# --- Exercise 1: kv_server(conn) ------------------------------------------------------


def kv_unpack_crash(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        op, *args = request  # an int can't be unpacked; the server dies
        if op == "stop":
            conn.send(("ok", "bye"))
            return
        if op == "set":
            store[args[0]] = args[1]
            conn.send(("ok", None))
        elif op == "get":
            if args[0] in store:
                conn.send(("ok", store[args[0]]))
            else:
                conn.send(("error", "no such key"))
        else:
            conn.send(("error", "unknown op"))


def kv_no_eof(conn):
    store = {}
    while True:
        request = conn.recv()  # EOFError when the client vanishes: a traceback
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", f"no key {args[0]!r}"))
            else:
                raise ValueError(f"bad request {request!r}")
        except (ValueError, TypeError) as exc:
            conn.send(("error", str(exc)))


def kv_unhashable_crash(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if not isinstance(request, tuple) or not request:
            conn.send(("error", "a request is a non-empty tuple"))
            continue
        op, args = request[0], request[1:]
        if op == "stop" and not args:
            conn.send(("ok", "bye"))
            return
        if op == "set" and len(args) == 2:
            store[args[0]] = args[1]  # a list key raises TypeError: the server dies
            conn.send(("ok", None))
        elif op == "get" and len(args) == 1:
            if args[0] in store:
                conn.send(("ok", store[args[0]]))
            else:
                conn.send(("error", "no such key"))
        else:
            conn.send(("error", "bad request"))


def kv_stops_on_error(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                conn.send(("ok", store[args[0]]))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))
            return  # "doesn't crash": it just stops serving


def kv_exception_reason(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                conn.send(("ok", store[args[0]]))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", exc))  # the exception object, not a string


def kv_missing_is_ok_none(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if not isinstance(request, tuple) or not request:
            conn.send(("error", "a request is a non-empty tuple"))
            continue
        op, args = request[0], request[1:]
        try:
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                conn.send(("ok", store.get(args[0])))  # a missing key is not an error here
            else:
                conn.send(("error", "bad request"))
        except TypeError as exc:
            conn.send(("error", str(exc)))


def kv_lenient_arity(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op = request[0]
            if op == "stop":  # ("stop", 1) stops too
                conn.send(("ok", "bye"))
                return
            if op == "set":  # extra items ignored
                store[request[1]] = request[2]
                conn.send(("ok", None))
            elif op == "get":
                if request[1] in store:
                    conn.send(("ok", store[request[1]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_accepts_lists(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, (tuple, list)) or not request:  # lists accepted
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], tuple(request[1:])
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_stop_silent(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                return  # no ("ok", "bye")
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_single_slot(conn):
    last = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                hash(args[0])
                last["value"] = args[1]  # one slot: the key is ignored
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if "value" in last:
                    conn.send(("ok", last["value"]))
                else:
                    conn.send(("error", "nothing set"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_eof_spins(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            time.sleep(0.01)
            continue  # never notices the client is gone
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_unknown_op_ok(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                conn.send(("ok", None))  # unknown ops quietly "succeed"
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_falsy_is_missing(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                value = store.get(args[0])
                if value:  # 0, "", None and [] look missing
                    conn.send(("ok", value))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_unpickling_crash(conn):
    store = {}
    while True:
        try:
            request = conn.recv()  # bytes that don't unpickle raise here: the server dies
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = request[0], request[1:]
            if op == "stop" and not args:
                conn.send(("ok", "bye"))
                return
            if op == "set" and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op == "get" and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


def kv_string_op_prefix(conn):
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if not isinstance(request, tuple) or not request:
                raise ValueError("a request is a non-empty tuple")
            op, args = str(request[0]).lower(), request[1:]  # "SET", b"set"... all accepted
            if op.startswith("stop") and not args:
                conn.send(("ok", "bye"))
                return
            if op.startswith("set") and len(args) == 2:
                store[args[0]] = args[1]
                conn.send(("ok", None))
            elif op.startswith("get") and len(args) == 1:
                if args[0] in store:
                    conn.send(("ok", store[args[0]]))
                else:
                    conn.send(("error", "no such key"))
            else:
                raise ValueError("bad request")
        except Exception as exc:
            conn.send(("error", str(exc)))


# right answers


def kv_send_unguarded(conn):
    # Right in every way but one: a send() to a client that has left raises BrokenPipeError.
    store = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        except Exception as exc:  # bytes that don't unpickle
            conn.send(("error", f"unreadable request: {type(exc).__name__}"))
            continue
        if not isinstance(request, tuple):  # a sequence pattern would match a list too
            conn.send(("error", f"a request is a tuple, not {type(request).__name__}"))
            continue
        match request:
            case ("stop",):
                conn.send(("ok", "bye"))
                return
            case ("set", key, value):
                try:
                    store[key] = value
                except TypeError:
                    conn.send(("error", f"key {key!r} can't be a dictionary key"))
                else:
                    conn.send(("ok", None))
            case ("get", key):
                try:
                    conn.send(("ok", store[key]))
                except (KeyError, TypeError):
                    conn.send(("error", f"no key {key!r}"))
            case _:
                conn.send(("error", f"unknown request {request!r}"))


def kv_right_match(conn):
    store = {}
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            except Exception as exc:  # bytes that don't unpickle
                conn.send(("error", f"unreadable request: {type(exc).__name__}"))
                continue
            if not isinstance(request, tuple):  # a sequence pattern would match a list too
                conn.send(("error", f"a request is a tuple, not {type(request).__name__}"))
                continue
            match request:
                case ("stop",):
                    conn.send(("ok", "bye"))
                    return
                case ("set", key, value):
                    try:
                        store[key] = value
                    except TypeError:
                        conn.send(("error", f"key {key!r} can't be a dictionary key"))
                    else:
                        conn.send(("ok", None))
                case ("get", key):
                    try:
                        conn.send(("ok", store[key]))
                    except (KeyError, TypeError):
                        conn.send(("error", f"no key {key!r}"))
                case _:
                    conn.send(("error", f"unknown request {request!r}"))
    except OSError:  # BrokenPipeError: the client left before reading a reply
        return


def kv_right_dispatch(conn):
    missing = object()
    store = {}

    def do_set(key, value):
        hash(key)
        store[key] = value
        return None

    def do_get(key):
        hash(key)
        value = store.get(key, missing)
        if value is missing:
            raise LookupError(f"{key!r} was never set")
        return value

    handlers = {"set": (2, do_set), "get": (1, do_get)}
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:
                conn.send(("error", "could not unpickle the request"))
                continue
            try:
                if type(request) is not tuple:
                    raise TypeError("requests must be tuples")
                if request == ("stop",):
                    conn.send(("ok", "bye"))
                    break
                if not request or not isinstance(request[0], str) or request[0] not in handlers:
                    raise ValueError("unknown operation")
                arity, handler = handlers[request[0]]
                if len(request) - 1 != arity:
                    raise ValueError(f"{request[0]} takes {arity} argument(s)")
                reply = ("ok", handler(*request[1:]))
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            conn.send(reply)
    except OSError:  # BrokenPipeError: the client left before reading a reply
        return


def kv_right_bytes_wait(conn):
    # raw bytes + pickle by hand, and wait() before each read
    table = {}
    try:
        while True:
            wait([conn])
            try:
                raw = conn.recv_bytes()
            except EOFError:
                return
            try:
                request = pickle.loads(raw)
            except Exception:
                conn.send_bytes(pickle.dumps(("error", "not a pickle")))
                continue
            if isinstance(request, tuple) and len(request) == 1 and request[0] == "stop":
                conn.send_bytes(pickle.dumps(("ok", "bye")))
                return
            if isinstance(request, tuple) and len(request) == 3 and request[0] == "set":
                try:
                    table[request[1]] = request[2]
                    reply = ("ok", None)
                except TypeError:
                    reply = ("error", "unhashable key")
            elif isinstance(request, tuple) and len(request) == 2 and request[0] == "get":
                try:
                    reply = ("ok", table[request[1]]) if request[1] in table else ("error", "unset")
                except TypeError:
                    reply = ("error", "unhashable key")
            else:
                reply = ("error", "malformed request")
            conn.send_bytes(pickle.dumps(reply))
    except OSError:  # BrokenPipeError: the client left before reading a reply
        return


KV_WRONG = {
    "unpack-crashes-on-non-tuple": kv_unpack_crash,
    "no-eoferror-handling": kv_no_eof,
    "unhashable-key-crashes": kv_unhashable_crash,
    "stops-serving-after-error": kv_stops_on_error,
    "reason-is-exception-object": kv_exception_reason,
    "missing-key-ok-none": kv_missing_is_ok_none,
    "extra-items-accepted": kv_lenient_arity,
    "lists-accepted": kv_accepts_lists,
    "stop-without-reply": kv_stop_silent,
    "one-slot-ignores-key": kv_single_slot,
    "eof-spins-forever": kv_eof_spins,
    "unknown-op-ok": kv_unknown_op_ok,
    "falsy-value-missing": kv_falsy_is_missing,
    "unpickling-error-crashes": kv_unpickling_crash,
    "op-prefix-case-insensitive": kv_string_op_prefix,
    "send-to-vanished-client-crashes": kv_send_unguarded,
}
KV_RIGHT = {
    "match-statement": kv_right_match,
    "dispatch-table-sentinel-get": kv_right_dispatch,
    "raw-bytes-manual-pickle": kv_right_bytes_wait,
}


@pytest.mark.parametrize("answer", KV_WRONG.values(), ids=KV_WRONG.keys())
def test_kv_server_rejects(answer):
    expect(check.check_kv_server, answer, "wrong")


@pytest.mark.parametrize("answer", KV_RIGHT.values(), ids=KV_RIGHT.keys())
def test_kv_server_accepts(answer):
    expect(check.check_kv_server, answer, "correct")


# --- Exercise 2: gather(conns, deadline) ----------------------------------------------


def ga_sequential(conns, deadline):
    messages = []
    for conn in conns:  # one after another: not arrival order, no deadline
        try:
            while True:
                messages.append(conn.recv())
        except EOFError:
            pass
    return messages, 0


def ga_timeout_resets(conns, deadline):
    messages, open_conns = [], list(conns)
    while open_conns:
        ready = wait(open_conns, timeout=deadline)  # the full deadline on every wait
        if not ready:
            break
        for conn in ready:
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_from_first_message(conns, deadline):
    messages, open_conns, start = [], list(conns), None
    while open_conns:
        if start is None:
            ready = wait(open_conns)
        else:
            left = start + deadline - time.monotonic()
            if left <= 0:
                break
            ready = wait(open_conns, timeout=left)
        for conn in ready:
            try:
                messages.append(conn.recv())
                if start is None:
                    start = time.monotonic()  # the clock starts at the first message
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_deadline_only_when_idle(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline
    while open_conns:
        ready = wait(open_conns, timeout=0.05)
        if not ready:
            if time.monotonic() >= end:  # checked only when nothing arrived
                break
            continue
        for conn in ready:
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_still_open_zero(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline
    while open_conns:
        left = end - time.monotonic()
        if left <= 0:
            break
        for conn in wait(open_conns, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, 0  # always "all closed"


def ga_sleep_then_read(conns, deadline):
    time.sleep(deadline)  # never returns early, and the order is lost
    messages, still_open = [], 0
    for conn in conns:
        try:
            while conn.poll():
                messages.append(conn.recv())
            still_open += 1
        except EOFError:
            pass
    return messages, still_open


def ga_first_eof_stops(conns, deadline):
    messages = []
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return messages, len(conns)
        for conn in wait(conns, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                return messages, len(conns) - 1  # one closed: stop


def ga_drain_after_deadline(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline
    while open_conns:
        left = end - time.monotonic()
        ready = wait(open_conns, timeout=max(left, 0))
        if not ready:
            break  # only stops once nothing at all is ready
        for conn in ready:
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_sorted(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline
    while open_conns:
        left = end - time.monotonic()
        if left <= 0:
            break
        for conn in wait(open_conns, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return sorted(messages, key=repr), len(open_conns)


def ga_deadline_ms(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline / 1000  # read as milliseconds
    while open_conns:
        left = end - time.monotonic()
        if left <= 0:
            break
        for conn in wait(open_conns, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_round_robin_per_conn(conns, deadline):
    messages, open_conns = [], list(conns)
    end = time.monotonic() + deadline
    while open_conns and time.monotonic() < end:
        for conn in list(open_conns):  # drains one connection fully before the next
            try:
                while conn.poll(0.2):
                    messages.append(conn.recv())
                    if time.monotonic() >= end:
                        break
            except EOFError:
                open_conns.remove(conn)
    return messages, len(open_conns)


def ga_first_ready_only(conns, deadline):
    # one message per wait(), always from the first ready connection: a busy connection
    # earlier in the list starves the others (their messages and their EOF)
    closed = set()
    messages = []
    end = time.monotonic() + deadline
    while len(closed) < len(conns):
        left = end - time.monotonic()
        if left <= 0:
            break
        ready = wait([c for i, c in enumerate(conns) if i not in closed], timeout=left)
        if not ready:
            break
        index = next(i for i, c in enumerate(conns) if c is ready[0])
        try:
            messages.append(conns[index].recv())
        except EOFError:
            closed.add(index)
    return messages, len(conns) - len(closed)


# right answers


def ga_right_wait(conns, deadline):
    end = time.monotonic() + deadline
    messages, open_conns = [], list(conns)
    while open_conns:
        left = end - time.monotonic()
        if left <= 0:
            break
        for conn in wait(open_conns, timeout=left):
            try:
                messages.append(conn.recv())
            except EOFError:
                open_conns.remove(conn)
            if time.monotonic() >= end:
                break
    return messages, len(open_conns)


def ga_right_selectors(conns, deadline):
    end = time.perf_counter() + deadline
    messages = []
    with selectors.DefaultSelector() as sel:
        for conn in conns:
            sel.register(conn, selectors.EVENT_READ)
        while sel.get_map():
            left = end - time.perf_counter()
            if left <= 0:
                break
            for key, _ in sel.select(timeout=left):
                try:
                    messages.append(key.fileobj.recv())
                except EOFError:
                    sel.unregister(key.fileobj)
        still_open = len(sel.get_map())
    return messages, still_open


def ga_right_dict_of_open(conns, deadline):
    # every ready connection per wait(); open ones kept in a dict by position
    stop_at = time.perf_counter() + deadline
    open_by_index = dict(enumerate(conns))
    messages = []
    while open_by_index:
        remaining = stop_at - time.perf_counter()
        if remaining <= 0:
            break
        ready = wait(list(open_by_index.values()), remaining)
        for index, conn in list(open_by_index.items()):
            if conn in ready:
                try:
                    messages.append(conn.recv())
                except EOFError:
                    del open_by_index[index]
    return messages, len(open_by_index)


GATHER_WRONG = {
    "sequential-recv": ga_sequential,
    "timeout-resets-each-wait": ga_timeout_resets,
    "deadline-from-first-message": ga_from_first_message,
    "deadline-checked-only-when-idle": ga_deadline_only_when_idle,
    "still-open-always-zero": ga_still_open_zero,
    "sleep-whole-deadline": ga_sleep_then_read,
    "stops-at-first-eof": ga_first_eof_stops,
    "drains-after-deadline": ga_drain_after_deadline,
    "sorted-messages": ga_sorted,
    "deadline-read-as-ms": ga_deadline_ms,
    "drain-one-conn-at-a-time": ga_round_robin_per_conn,
    "first-ready-only-starves-others": ga_first_ready_only,
}
GATHER_RIGHT = {
    "wait-with-remaining-time": ga_right_wait,
    "selectors": ga_right_selectors,
    "every-ready-dict-of-open": ga_right_dict_of_open,
}


@pytest.mark.parametrize("answer", GATHER_WRONG.values(), ids=GATHER_WRONG.keys())
def test_gather_rejects(answer):
    expect(check.check_gather, answer, "wrong")


@pytest.mark.parametrize("answer", GATHER_RIGHT.values(), ids=GATHER_RIGHT.keys())
def test_gather_accepts(answer):
    expect(check.check_gather, answer, "correct")
