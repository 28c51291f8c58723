"""helpers.work: the shared jobs are deterministic and validate their input."""

import pytest

from helpers import work


def test_busy_sum_is_deterministic():
    assert work.busy_sum(0) == 0
    assert work.busy_sum(10) == sum(i * i % 7 for i in range(10))


@pytest.mark.parametrize(("arg", "error"), [("3", TypeError), (2.5, TypeError), (-1, ValueError)])
def test_busy_sum_rejects_bad_n(arg, error):
    with pytest.raises(error, match="n must"):
        work.busy_sum(arg)


def test_calibrate_gives_a_count_that_takes_about_that_long():
    import time

    n = work.calibrate(0.1)
    start = time.perf_counter()
    work.busy_sum(n)
    took = time.perf_counter() - start
    assert 0.02 < took < 0.5  # noisy machines: the order of magnitude is what matters
    with pytest.raises(ValueError, match="seconds"):
        work.calibrate(0)


def test_fake_download_returns_its_span():
    s = work.fake_download("https://example.org/page", 0.02)
    assert s.label == "page" and s.duration >= 0.02
    with pytest.raises(TypeError, match="url"):
        work.fake_download(b"x")
    with pytest.raises(ValueError, match="seconds"):
        work.fake_download("u", -1)
