"""Workers for chapter 06 (managers and shared memory), and a class a manager can serve.

Everything here runs in a child process (a worker, or a manager's server), so it lives in
a module the child can import by name. NumPy is imported inside the functions that need
it, so workers that don't use it start faster.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from multiprocessing import shared_memory
from multiprocessing.managers import BaseManager
from typing import Any, NamedTuple

from helpers.validate import check_count as _check_int
from helpers.validate import check_str


def _check_str(value: Any, name: str) -> str:
    return check_str(value, name, nonempty=True)


__all__ = [
    "register_worker",
    "tune",
    "increment",
    "increment_value",
    "fill_slice",
    "read_value",
    "use_counter",
    "add_to_counter",
    "use_array",
    "double_row",
    "Inventory",
    "InventoryManager",
    "restock",
    "InventoryServer",
    "serve_inventory",
    "remote_restock",
    "fill_rows",
    "expected_rows",
    "Transfer",
    "TRANSFER_METHODS",
    "time_transfers",
    "time_transfers_by_size",
    "expected_transfers",
    "plot_transfer_costs",
]


# --- Manager basics -------------------------------------------------------------------


def register_worker(registry: Any, arrivals: Any, name: str) -> None:
    """Record this worker in a managed dict (name -> pid) and a managed list (arrival order)."""
    _check_str(name, "name")
    registry[name] = os.getpid()
    arrivals.append(name)


def tune(settings: Any) -> None:
    """Halve ``settings.threshold`` in a managed Namespace and sign the change with this pid."""
    if not hasattr(settings, "threshold"):
        raise TypeError("settings must be a Namespace with a threshold attribute")
    settings.threshold = settings.threshold / 2  # a read (one round trip), then a write
    settings.tuned_by = os.getpid()


def increment(shared: Any, key: Any, times: int, lock: Any = None, start: Any = None) -> None:
    """Do ``shared[key] += 1`` ``times`` times, holding ``lock`` around each one if given.

    If ``start`` (a Barrier) is given, wait there first (at most 30 s), so that all the
    workers sharing it begin incrementing at the same moment.
    """
    _check_int(times, "times")
    if start is not None and not hasattr(start, "wait"):
        raise TypeError(f"start must be a Barrier or None, got {type(start).__name__}")
    if start is not None:
        start.wait(timeout=30)
    for _ in range(times):
        if lock is None:
            shared[key] += 1  # read (one round trip), then write (another)
        else:
            with lock:
                shared[key] += 1


def increment_value(value: Any, times: int, use_lock: bool) -> None:
    """Do ``value.value += 1`` ``times`` times on a ``multiprocessing.Value``.

    With ``use_lock`` the increment runs under ``value.get_lock()``.
    """
    _check_int(times, "times")
    if not isinstance(use_lock, bool):
        raise TypeError(f"use_lock must be a bool, got {type(use_lock).__name__}")
    for _ in range(times):
        if use_lock:
            with value.get_lock():
                value.value += 1
        else:
            value.value += 1


def fill_slice(array: Any, start: int, stop: int) -> None:
    """Write ``i * i`` into ``array[i]`` for ``start <= i < stop`` (an Array or RawArray)."""
    _check_int(start, "start")
    _check_int(stop, "stop")
    if stop < start:
        raise ValueError(f"stop ({stop}) must be >= start ({start})")
    for i in range(start, stop):
        array[i] = i * i


def read_value(value: Any) -> Any:
    """Return ``value.value`` (a pool task that receives a ``Value`` as its argument)."""
    return value.value


_counter: Any = None  # set in each pool worker by use_counter()


def use_counter(counter: Any) -> None:
    """Pool initializer: keep ``counter`` (a ``multiprocessing.Value``) for add_to_counter."""
    if not hasattr(counter, "get_lock"):
        raise TypeError(f"counter must be a multiprocessing.Value, got {type(counter).__name__}")
    global _counter
    _counter = counter


def add_to_counter(n: int) -> int:
    """Pool task: add ``n`` to the worker's counter (set by use_counter), under its lock."""
    _check_int(n, "n")
    if _counter is None:
        raise RuntimeError("no counter: start the pool with initializer=use_counter")
    with _counter.get_lock():
        _counter.value += n
    return os.getpid()


_array: Any = None  # set in each pool worker by use_array()


def use_array(raw: Any, shape: tuple[int, int]) -> None:
    """Pool initializer: keep a NumPy view of ``raw`` (a RawArray of doubles) with ``shape``."""
    import numpy as np

    if not (isinstance(shape, tuple) and len(shape) == 2):
        raise TypeError(f"shape must be a (rows, cols) tuple, got {shape!r}")
    global _array
    _array = np.frombuffer(raw, dtype=np.float64).reshape(shape)  # no copy: the shared memory


def double_row(row: int) -> int:
    """Pool task: double row ``row`` of the array set up by use_array, in place; return the pid."""
    _check_int(row, "row")
    if _array is None:
        raise RuntimeError("no array: start the pool with initializer=use_array")
    _array[row] *= 2
    return os.getpid()


# --- A custom manager -------------------------------------------------------------------


class Inventory:
    """Stock counts for items, kept in a manager's server process.

    The server runs each client connection in its own thread, so every method takes
    ``self._lock``: a method call is then one round trip and atomic.
    """

    def __init__(self) -> None:
        self._stock: dict[str, int] = {}
        self._threads: set[str] = set()
        self._lock = threading.Lock()

    def add(self, item: str, n: int = 1) -> int:
        """Add ``n`` of ``item``; return the new count."""
        _check_str(item, "item")
        _check_int(n, "n")
        with self._lock:
            self._threads.add(threading.current_thread().name)
            self._stock[item] = self._stock.get(item, 0) + n
            return self._stock[item]

    def take(self, item: str, n: int = 1) -> int:
        """Remove ``n`` of ``item``; raise ValueError if there are fewer. Return what is left."""
        _check_str(item, "item")
        _check_int(n, "n")
        with self._lock:
            have = self._stock.get(item, 0)
            if have < n:
                raise ValueError(f"only {have} {item} in stock, cannot take {n}")
            self._stock[item] = have - n
            return self._stock[item]

    def counts(self) -> dict[str, int]:
        """A copy of all stock counts."""
        with self._lock:
            return dict(self._stock)

    def server_pid(self) -> int:
        """The pid of the process this object lives in."""
        return os.getpid()

    def threads_seen(self) -> int:
        """How many different server threads have called :meth:`add`."""
        with self._lock:
            return len(self._threads)


class InventoryManager(BaseManager):
    """A manager whose server process creates and holds :class:`Inventory` objects.

    It lives in a module, not a notebook cell, for the same reason workers do: under
    spawn and forkserver the server process must import it by name.
    """


InventoryManager.register("Inventory", Inventory)


def restock(inventory: Any, item: str, times: int) -> None:
    """Call ``inventory.add(item)`` ``times`` times (each call is one atomic round trip)."""
    _check_str(item, "item")
    _check_int(times, "times")
    for _ in range(times):
        inventory.add(item)


_shop: Inventory | None = None  # the one Inventory a serve_inventory() process serves


def _the_inventory() -> Inventory:
    if _shop is None:
        raise RuntimeError("this process is not running serve_inventory()")
    return _shop


class InventoryServer(BaseManager):
    """A manager that serves one :class:`Inventory` to every client that connects to it."""


InventoryServer.register("inventory", callable=_the_inventory)


def serve_inventory(host: str, authkey: bytes, ready: Any) -> None:
    """Serve one Inventory on ``(host, a free port)`` until this process is stopped.

    Sends the address it listens on through ``ready`` (a Pipe end) once clients can connect.
    """
    global _shop
    _check_str(host, "host")
    if not isinstance(authkey, bytes):
        raise TypeError(f"authkey must be bytes, got {type(authkey).__name__}")
    _shop = Inventory()
    server = InventoryServer(address=(host, 0), authkey=authkey).get_server()  # listens now
    ready.send(server.address)  # port 0 above: the operating system picked a free one
    ready.close()
    server.serve_forever()


def remote_restock(address: tuple[str, int], authkey: bytes, item: str, times: int) -> int:
    """Connect to an InventoryServer at ``address``, add ``item`` ``times`` times, return the
    pid of the server process that holds the inventory."""
    _check_str(item, "item")
    _check_int(times, "times")
    manager = InventoryServer(address=address, authkey=authkey)
    manager.connect()
    inventory = manager.inventory()
    for _ in range(times):
        inventory.add(item)
    return inventory.server_pid()


# --- Shared memory ----------------------------------------------------------------------


def expected_rows(shape: tuple[int, int], start: int, stop: int) -> Any:
    """The values :func:`fill_rows` writes into rows ``start:stop``: ``sqrt(row * cols + col)``."""
    import numpy as np

    _, cols = shape
    index = np.arange(start * cols, stop * cols, dtype=np.float64).reshape(stop - start, cols)
    return np.sqrt(index)


def fill_rows(name: str, shape: tuple[int, int], start: int, stop: int) -> None:
    """Attach to the float64 array in shared memory block ``name`` and fill rows start:stop.

    The worker opens the block by name, writes through a NumPy view, drops the view and
    closes its handle. It never unlinks: the process that created the block does that.
    """
    import numpy as np

    _check_str(name, "name")
    if not (isinstance(shape, tuple) and len(shape) == 2):
        raise TypeError(f"shape must be a (rows, cols) tuple, got {shape!r}")
    rows, cols = (_check_int(v, "shape") for v in shape)
    _check_int(start, "start")
    _check_int(stop, "stop")
    if not start <= stop <= rows:
        raise ValueError(f"need 0 <= start <= stop <= {rows}, got start={start}, stop={stop}")
    shm = shared_memory.SharedMemory(name=name)
    try:
        array = np.ndarray((rows, cols), dtype=np.float64, buffer=shm.buf)
        array[start:stop] = expected_rows((rows, cols), start, stop)
        del array  # a view into shm.buf must be gone before close()
    finally:
        shm.close()


# --- What sharing costs -----------------------------------------------------------------

TRANSFER_METHODS = ("manager", "queue", "pipe", "shared memory", "new shared memory")


class Transfer(NamedTuple):
    """How long sharing ``nbytes`` took by one method (fastest round), and what arrived."""

    method: str
    nbytes: int
    rounds: int
    seconds_per_round: float
    received: list[tuple[int, int, int, int]]


def _summary(data: Any) -> tuple[int, int, int, int]:
    # The receiver reads every byte (the sum), as real work on the data would, and reports
    # enough to prove it saw this round's data: its length, first and last byte, and sum.
    return (len(data), int(data[0]), int(data[-1]), int(data.sum()))


def _receive(method: str, source: Any, control: Any) -> None:
    """Worker for :func:`time_transfers`: receive data until told to stop, reply a summary.

    ``control`` is a Pipe end for every method: it carries "ready", each round's size (or,
    for "new shared memory", the new block's name) and the replies. The data itself travels
    through ``source``: a managed dict, a Queue, the same Pipe, or a shared memory block.
    """
    import numpy as np

    shm = shared_memory.SharedMemory(name=source) if method == "shared memory" else None
    try:
        control.send("ready")
        while (message := control.recv()) is not None:
            if method == "manager":
                data = source["data"]  # the server pickles it and sends it here
            elif method == "queue":
                data = source.get()
            elif method == "pipe":
                data = control.recv()
            elif method == "shared memory":
                data = np.frombuffer(shm.buf, dtype=np.uint8, count=message)  # no copy
            else:  # "new shared memory": attach to this round's block by its name
                name, nbytes = message
                block = shared_memory.SharedMemory(name=name)
                data = np.frombuffer(block.buf, dtype=np.uint8, count=nbytes)
                summary = _summary(data)
                del data  # drop the view before close()
                block.close()
                control.send(summary)
                continue
            control.send(_summary(data))
            del data
    finally:
        if shm is not None:
            shm.close()


def time_transfers(method: str, nbytes: int, rounds: int) -> Transfer:
    """Send ``rounds`` fresh versions of an ``nbytes`` NumPy array to a worker by ``method``.

    ``method`` is one of :data:`TRANSFER_METHODS`. Each round the parent writes a new
    version of the data (its first and last bytes change), hands it over and waits for the
    worker's reply; the worker reads every byte of it (a sum). "shared memory" copies each
    version into one block made before the rounds; "new shared memory" creates a block each
    round, copies the data into it (the first touch of its pages), and closes and unlinks it
    once the worker has replied, all inside the timed round. One warm-up round is not timed;
    ``seconds_per_round`` is the fastest round: other programs on a busy machine can only
    slow a round down, so the fastest one is the least disturbed. Starts and stops its own
    worker (and manager, queue or blocks), using the default start method.
    """
    _check_int(nbytes, "nbytes", minimum=1)
    return time_transfers_by_size(method, (nbytes,), rounds)[nbytes]


def time_transfers_by_size(method: str, sizes: Any, rounds: int) -> dict[int, Transfer]:
    """:func:`time_transfers` for several sizes (bytes) with one worker: {size: Transfer}.

    The sizes are timed one after the other, each with its own warm-up round.
    """
    import numpy as np

    if method not in TRANSFER_METHODS:
        raise ValueError(f"method must be one of {TRANSFER_METHODS}, got {method!r}")
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of byte counts, got {sizes!r}")
    sizes = [_check_int(n, "sizes", minimum=1) for n in sizes]
    if not sizes:
        raise ValueError("sizes must not be empty")
    _check_int(rounds, "rounds", minimum=1)
    manager = queue = shm = view = None
    parent_end, child_end = multiprocessing.Pipe()
    results = {}
    try:
        if method == "manager":
            manager = multiprocessing.Manager()
            source: Any = manager.dict()
        elif method == "queue":
            source = queue = multiprocessing.Queue()
        elif method == "shared memory":
            shm = shared_memory.SharedMemory(create=True, size=max(sizes))
            source = shm.name
            view = np.ndarray(max(sizes), dtype=np.uint8, buffer=shm.buf)
        else:
            source = None
        worker = multiprocessing.Process(
            target=_receive, args=(method, source, child_end), name=f"receiver-{method}"
        )
        worker.start()
        child_end.close()
        try:
            if not parent_end.poll(30) or parent_end.recv() != "ready":
                raise RuntimeError(f"the {method} receiver did not start")
            for nbytes in sizes:
                payload = np.zeros(nbytes, dtype=np.uint8)
                received, times = [], []
                for i in range(rounds + 1):  # round 0 warms up and is not timed
                    start = time.perf_counter()
                    payload[0] = i % 256
                    payload[-1] = (i * 7) % 256
                    if method == "new shared memory":
                        reply = _hand_over_new_block(payload, parent_end)
                    else:
                        if method == "manager":
                            source["data"] = payload  # pickled and sent to the server
                        elif method == "queue":
                            queue.put(payload)
                        elif method == "shared memory":
                            view[:nbytes] = payload  # copy the new version into the block
                        parent_end.send(nbytes)
                        if method == "pipe":
                            parent_end.send(payload)
                        reply = parent_end.recv()
                    if i >= 1:
                        times.append(time.perf_counter() - start)
                        received.append(tuple(reply))
                results[nbytes] = Transfer(method, nbytes, rounds, min(times), received)
            parent_end.send(None)
        finally:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join()
    finally:
        parent_end.close()
        if queue is not None:
            queue.close()
            queue.join_thread()
        if manager is not None:
            manager.shutdown()
        if shm is not None:
            del view  # the NumPy view must go before close()
            shm.close()
            shm.unlink()
    return results


def _hand_over_new_block(payload: Any, control: Any) -> Any:
    """One "new shared memory" round: create a block, fill it, send its name, wait for the
    reply, then close and unlink the block. Returns the reply."""
    import numpy as np

    block = shared_memory.SharedMemory(create=True, size=payload.nbytes)
    try:
        view = np.ndarray(payload.shape, dtype=np.uint8, buffer=block.buf)
        view[:] = payload  # the first touch of each page of a new block
        del view
        control.send((block.name, payload.nbytes))
        return control.recv()
    finally:
        block.close()
        block.unlink()


def expected_transfers(nbytes: int, rounds: int) -> list[tuple[int, int, int, int]]:
    """What the receiver in :func:`time_transfers` should report, round by round."""
    _check_int(nbytes, "nbytes", minimum=1)
    _check_int(rounds, "rounds", minimum=1)
    if nbytes == 1:  # first and last byte are the same byte: the last write wins
        return [(1, i * 7 % 256, i * 7 % 256, i * 7 % 256) for i in range(1, rounds + 1)]
    return [(nbytes, i % 256, i * 7 % 256, i % 256 + i * 7 % 256) for i in range(1, rounds + 1)]


def plot_transfer_costs(per_round: Mapping[tuple[str, str], float], title: str = "") -> Any:
    """Bar chart of seconds per round, by size (groups) and method (bars), on a log scale.

    ``per_round`` maps ``(method, size label)`` to seconds; every method in
    :data:`TRANSFER_METHODS` needs every size. Each bar is labelled with how many times the
    shared-memory cost it is. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    if not isinstance(per_round, Mapping) or not per_round:
        raise TypeError("per_round must be a non-empty mapping (method, size label) -> seconds")
    sizes = list(dict.fromkeys(size for _, size in per_round))
    missing = [(m, s) for m in TRANSFER_METHODS for s in sizes if (m, s) not in per_round]
    if missing:
        raise ValueError(f"per_round has no time for {missing[0]}")
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    width = 0.8 / len(TRANSFER_METHODS)
    colors = plt.get_cmap("tab10").colors
    for i, method in enumerate(TRANSFER_METHODS):
        offset = (i - (len(TRANSFER_METHODS) - 1) / 2) * width
        xs = [j + offset for j in range(len(sizes))]
        bars = ax.bar(
            xs, [per_round[method, s] * 1e3 for s in sizes], width, label=method, color=colors[i]
        )
        ratios = [per_round[method, s] / per_round["shared memory", s] for s in sizes]
        ax.bar_label(
            bars,
            labels=[f"{r:.0f}x" if r >= 10 else f"{r:.1f}x" for r in ratios],
            fontsize=8,
            padding=2,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xticks(range(len(sizes)), [f"{size} per round" for size in sizes])
    ax.set_ylabel("ms per round, fastest of the rounds (log scale)")
    ax.set_title(title or "Handing data to another process (labels: times the shared-memory cost)")
    ax.legend(ncols=3, loc="upper left", fontsize=8)
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    return fig
