"""Helpers for the Python multiprocessing course.

Everything that runs in a child process lives here, because children started with
``spawn`` or ``forkserver`` import their target function by module name; a function
defined in a notebook cell cannot be sent to them. Shared tools live here too:
``helpers.timeline`` (record when work ran, and draw it) and ``helpers.checks``
(exercise checks).
"""

__version__ = "0.1.0"
