"""run_with_time_limit: a worker's start-up is not counted against a file's limit."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from helpers import capstone
from helpers.capstone import analyse_file, run_with_time_limit


@pytest.fixture
def small_files(tmp_path):
    paths = []
    for n in range(6):
        path = tmp_path / f"m{n}.py"
        path.write_text(f"def f{n}():\n    return {n}\n")
        paths.append(path)
    return paths


@pytest.mark.skipif(
    multiprocessing.get_start_method() != "fork",
    reason="the slow start is patched into the parent's memory, which only fork children share",
)
def test_start_up_is_not_counted_against_the_limit(small_files, monkeypatch):
    # Every worker takes longer to start than the limit (as a spawned worker importing its
    # modules on a busy machine); each file takes milliseconds, so none may time out.
    real_ignore_sigint = capstone.ignore_sigint

    def slow_start():
        time.sleep(0.6)
        real_ignore_sigint()

    monkeypatch.setattr(capstone, "ignore_sigint", slow_start)
    got = {r["path"]: r for r in run_with_time_limit(small_files, 2, limit=0.3)}
    assert got == {str(p): analyse_file(p) for p in small_files}
    assert multiprocessing.active_children() == []
