"""Workers for chapter 08: events, conditions and barriers.

Every function that runs in a child process lives here, so spawn and forkserver
children can import it. ``plot_traffic`` and ``cars_on_red`` run in the notebook.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from helpers import timeline
from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds
from helpers.validate import check_str as _check_str

__all__ = [
    "naive_light",
    "traffic_light",
    "car",
    "cars_on_red",
    "plot_traffic",
    "waiter",
    "worker_until_stopped",
    "worker_ignoring_sigterm",
    "worker_until_interrupted",
    "baker",
    "customer",
    "shopper",
    "phase_worker",
    "meet_or_give_up",
    "wiretap",
]


# --- Event: a traffic light ---------------------------------------------------------


def naive_light(
    green: Any, green_seconds: float, phases: Any = None, cycles: int | None = None
) -> None:
    """A common first attempt: flip ``green`` (an Event) in a loop, sleeping only on green.

    With ``cycles=None`` it never returns. With ``green_seconds=0`` it never sleeps at
    all. With ``phases`` it puts a ``"red"`` and a ``"green"`` span per cycle there.
    """
    green_seconds = _check_seconds(green_seconds, "green_seconds")
    if cycles is not None:
        _check_count(cycles, "cycles", minimum=1)
    done = 0
    red_since = timeline.now()
    while cycles is None or done < cycles:
        if green.is_set():
            green.clear()  # red ...
            red_since = timeline.now()
        else:
            green_since = timeline.now()
            green.set()  # ... and green again on the very next pass of the loop
            if green_seconds:
                time.sleep(green_seconds)  # the only sleep: red lasts no time at all
            if phases is not None:
                phases.put(timeline.make_span("red", red_since, green_since))
                phases.put(timeline.make_span("green", green_since, timeline.now()))
            done += 1


def traffic_light(
    green: Any,
    cycles: int,
    red_seconds: float,
    green_seconds: float,
    phases: Any,
    start_line: Any = None,
) -> None:
    """Run ``cycles`` of red then green; ``green`` is an Event (set = green).

    Each phase goes into ``phases`` as a span labelled ``"red"`` or ``"green"``: a red
    span starts once the event is cleared, a green span starts before it is set and ends
    once it is cleared, so a car that passed while the event was set passed inside a green
    span. After the last cycle the light stays green (switched off: nobody waits forever)
    and the function returns. With ``start_line`` (a Barrier), wait there first.
    """
    _check_count(cycles, "cycles", minimum=1)
    red_seconds = _check_seconds(red_seconds, "red_seconds")
    green_seconds = _check_seconds(green_seconds, "green_seconds")
    if start_line is not None:
        start_line.wait()
    for cycle in range(cycles):
        green.clear()
        with timeline.record("red", sink=phases):
            time.sleep(red_seconds)
        start = timeline.now()
        green.set()
        time.sleep(green_seconds)
        if cycle < cycles - 1:
            green.clear()
        phases.put(timeline.make_span("green", start, timeline.now()))


def car(
    green: Any,
    name: str,
    delay: float,
    sink: Any,
    start_line: Any = None,
    timeout: float = 10.0,
) -> None:
    """Drive up ``delay`` seconds after the start, wait for green, pass.

    With ``start_line`` (a Barrier), the delay counts from when everybody met there.
    Puts ``(name, arrived, passed)`` into ``sink`` (``passed`` is None if the light
    stayed red for ``timeout`` seconds).
    """
    _check_str(name, "name")
    delay = _check_seconds(delay, "delay")
    timeout = _check_seconds(timeout, "timeout")
    if start_line is not None:
        start_line.wait()
    time.sleep(delay)
    arrived = timeline.now()
    passed = timeline.now() if green.wait(timeout=timeout) else None
    sink.put((name, arrived, passed))


def cars_on_red(phases: list[timeline.Span], cars: list[tuple]) -> list[str]:
    """Return the names of cars that cannot have seen the light green.

    A car saw the event set at some moment between ``arrived`` (taken before
    ``wait()``) and ``passed`` (taken after it returned), so a correct pass has that
    window meet a green phase. Checking the window, not the ``passed`` time alone, stays
    right when a car is paused after ``wait()`` returned and the light has turned red
    meanwhile. The last green phase lasts for ever: the light stays green when it stops.
    """
    greens = [p for p in phases if p.label == "green"]
    last = max((g.end for g in greens), default=None)
    return [
        name
        for name, arrived, passed in cars
        if passed is None
        or not any(
            arrived <= (math.inf if g.end == last else g.end) and g.start <= passed for g in greens
        )
    ]


def plot_traffic(
    phases: list[timeline.Span],
    cars: list[tuple],
    origin: float,
    ax: Any = None,
    title: str = "Traffic light with an Event: cars wait on red, pass on green",
):
    """Draw the light's phases as coloured bands and each car's wait (bar) and pass (dot).

    ``cars`` holds ``(name, arrived, passed)`` tuples; rows are in order of arrival.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.5 + 0.45 * len(cars)), layout="constrained")
    for p in phases:
        ax.axvspan(
            p.start - origin,
            p.end - origin,
            color="tab:green" if p.label == "green" else "tab:red",
            alpha=0.25,
            linewidth=0,
        )
    ordered = sorted(cars, key=lambda c: c[1])
    for row, (_, arrived, passed) in enumerate(ordered):
        end = passed if passed is not None else max(p.end for p in phases)
        ax.barh(
            row,
            end - arrived,
            left=arrived - origin,
            height=0.5,
            color="0.6",
            edgecolor="black",
            linewidth=0.5,
        )
        if passed is not None:
            ax.plot(passed - origin, row, "o", color="black")
            ax.text(
                end - origin + 0.02,
                row,
                f"waited {passed - arrived:.2f} s" if passed - arrived >= 0.005 else "no wait",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(range(len(ordered)), [c[0] for c in ordered])
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.set_xlim(0, max(p.end for p in phases) - origin + 0.35)  # room for the last label
    ax.set_xlabel("seconds from the start")
    ax.set_title(title)
    ax.legend(
        handles=[
            Patch(color="tab:red", alpha=0.25, label="light red"),
            Patch(color="tab:green", alpha=0.25, label="light green"),
            Patch(facecolor="0.6", edgecolor="black", label="car waiting"),
            Line2D([], [], marker="o", color="black", linestyle="", label="car passes"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        frameon=False,
    )
    return ax


def waiter(
    event: Any, timeout: float, results: Any, start_line: Any = None, rounds: int = 1
) -> None:
    """Wait for ``event`` up to ``timeout`` s, ``rounds`` times; report each wait.

    Puts ``(returned, seconds waited)`` into ``results`` per round, where ``returned`` is
    what ``event.wait(timeout)`` returned. With ``start_line`` (a Barrier), each round
    first waits there, so the caller knows when the waits begin.
    """
    timeout = _check_seconds(timeout, "timeout")
    _check_count(rounds, "rounds", minimum=1)
    for _ in range(rounds):
        if start_line is not None:
            start_line.wait()
        started = time.perf_counter()
        returned = event.wait(timeout)
        results.put((returned, time.perf_counter() - started))


# --- Event: shutdown ------------------------------------------------------------------


def worker_until_stopped(stop: Any, name: str, results: Any, interval: float = 0.05) -> None:
    """Do small units of work until ``stop`` is set, then clean up and report.

    Puts ``(name, "started")`` first, then ``(name, "cleaned up", units)`` on the way out.
    """
    _check_str(name, "name")
    interval = _check_seconds(interval, "interval")
    results.put((name, "started"))
    units = 0
    try:
        while not stop.is_set():
            time.sleep(interval)  # one unit of work
            units += 1
    finally:
        results.put((name, "cleaned up", units))


def worker_ignoring_sigterm(stop: Any, name: str, results: Any, interval: float = 0.05) -> None:
    """:func:`worker_until_stopped`, but SIGTERM is ignored here: the parent decides.

    A scheduler that signals every process of a job (systemd, Slurm) would otherwise kill
    the worker before it can clean up; its parent sets ``stop`` instead.
    """
    import signal

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # before it reports "started"
    worker_until_stopped(stop, name, results, interval)


def worker_until_interrupted(name: str, results: Any, interval: float = 0.05) -> None:
    """Work until a ``KeyboardInterrupt`` (SIGINT, e.g. ``Process.interrupt()``) arrives.

    Puts ``(name, "started")``, then ``(name, "interrupted", units)`` from its clean-up,
    and returns normally, so the process exits with code 0.
    """
    _check_str(name, "name")
    interval = _check_seconds(interval, "interval")
    units = 0
    try:
        results.put((name, "started"))
        while True:
            time.sleep(interval)  # one unit of work
            units += 1
    except KeyboardInterrupt:
        results.put((name, "interrupted", units))


# --- Condition: a bakery -------------------------------------------------------------


def baker(shelf: Any, loaves: Any, batches: int, per_batch: int, seconds: float, sink: Any) -> None:
    """Bake ``batches`` batches of ``per_batch`` loaves; after each, tell the customers.

    ``shelf`` is a Condition, ``loaves`` a shared int (``Value("i", 0, lock=False)``)
    that is only touched while holding ``shelf``.
    """
    _check_count(batches, "batches")
    _check_count(per_batch, "per_batch")
    seconds = _check_seconds(seconds, "seconds")
    for i in range(batches):
        with timeline.record(f"bake {i + 1}", sink=sink):
            time.sleep(seconds)
        with shelf:
            loaves.value += per_batch
            shelf.notify_all()  # wake every waiting customer: each re-checks the shelf


def customer(shelf: Any, loaves: Any, name: str, sink: Any, timeout: float = 10.0) -> None:
    """Wait (under ``shelf``) until a loaf is on the shelf and take it.

    Puts a span from arrival to leaving into ``sink``, labelled ``name``, or
    ``"<name> gave up"`` if no loaf came within ``timeout`` seconds.
    """
    _check_str(name, "name")
    timeout = _check_seconds(timeout, "timeout")
    arrived = timeline.now()
    with shelf:
        got_one = shelf.wait_for(lambda: loaves.value > 0, timeout=timeout)
        if got_one:
            loaves.value -= 1
    sink.put(timeline.make_span(name if got_one else f"{name} gave up", arrived, timeline.now()))


def shopper(
    shelf: Any,
    loaves: Any,
    name: str,
    results: Any,
    start_line: Any = None,
    timeout: float = 10.0,
) -> None:
    """Like ``customer``, but count how often the shelf was checked.

    Puts ``(name, got_one, checks)`` into ``results``: ``checks`` is how many times the
    predicate ran (once on arrival, then once per wake-up). With ``start_line`` (a
    Barrier), wait there first.
    """
    _check_str(name, "name")
    timeout = _check_seconds(timeout, "timeout")
    checks = 0
    if start_line is not None:
        start_line.wait()

    def loaf_on_shelf() -> bool:
        nonlocal checks
        checks += 1
        return loaves.value > 0

    with shelf:
        got_one = shelf.wait_for(loaf_on_shelf, timeout=timeout)
        if got_one:
            loaves.value -= 1
    results.put((name, bool(got_one), checks))


# --- Barrier: phases that line up ----------------------------------------------------


def phase_worker(barrier: Any, name: str, durations: list[float], sink: Any) -> None:
    """Do one piece of work per phase, then wait at ``barrier`` for the others.

    Records ``"phase N"`` spans for the work and ``"wait"`` spans at the barrier.
    """
    _check_str(name, "name")
    if not isinstance(durations, (list, tuple)):
        raise TypeError(f"durations must be a list of seconds, got {type(durations).__name__}")
    durations = [_check_seconds(d, "durations[i]") for d in durations]
    for phase, seconds in enumerate(durations, start=1):
        with timeline.record(f"phase {phase}", sink=sink):
            time.sleep(seconds)
        with timeline.record("wait", sink=sink):
            barrier.wait()


def meet_or_give_up(barrier: Any, name: str, results: Any, timeout: float = 0.3) -> None:
    """Wait at ``barrier`` at most ``timeout`` s; report ``(name, "met")`` or the error name."""
    _check_str(name, "name")
    timeout = _check_seconds(timeout, "timeout")
    try:
        barrier.wait(timeout=timeout)
        results.put((name, "met"))
    except threading.BrokenBarrierError as exc:
        results.put((name, type(exc).__name__))


# --- Over the network: what travels on the wire --------------------------------------


@contextlib.contextmanager
def wiretap(address: tuple[str, int]) -> Iterator[tuple[tuple[str, int], bytearray]]:
    """Forward one TCP connection to ``address`` and keep a copy of every byte sent.

    Yields ``(tap_address, captured)``: connect to ``tap_address`` instead of
    ``address``; ``captured`` fills with the bytes the client sent (what anyone on the
    network path could read). Runs in threads of this process; loopback only.
    """
    if not (isinstance(address, tuple) and len(address) == 2 and isinstance(address[1], int)):
        raise TypeError(f"address must be a (host, port) tuple, got {address!r}")
    if address[0] not in ("127.0.0.1", "localhost"):
        raise ValueError(f"address must be on loopback (127.0.0.1), got {address[0]!r}")
    captured = bytearray()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def pump(src: socket.socket, dst: socket.socket, copy: bytearray | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if copy is not None:
                    copy.extend(data)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def relay() -> None:
        try:
            client, _ = server.accept()
        except OSError:
            return
        with client, socket.create_connection(address, timeout=10) as upstream:
            back = threading.Thread(target=pump, args=(upstream, client, None), daemon=True)
            back.start()
            pump(client, upstream, captured)
            back.join(timeout=10)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[:2], captured
    finally:
        server.close()
        thread.join(timeout=10)
