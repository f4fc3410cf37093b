import pytest
from hypothesis import given, strategies as st

from guardian.restart.backoff import backoff_delay

MIDDLE = lambda: 0.5  # noqa: E731 - rng at the middle of [0, 1): no jitter


def test_delay_doubles_from_initial_until_the_cap():
    delays = [backoff_delay(n, 1.0, 10.0, 0.1, MIDDLE) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_moves_the_delay_by_at_most_its_fraction():
    assert backoff_delay(3, 1.0, 60.0, 0.25, lambda: 0.0) == pytest.approx(3.0)
    assert backoff_delay(3, 1.0, 60.0, 0.25, lambda: 0.999999) == pytest.approx(5.0, abs=1e-4)


def test_jitter_never_exceeds_the_cap():
    assert backoff_delay(10, 1.0, 30.0, 0.5, lambda: 0.999) == 30.0


def test_huge_attempt_numbers_do_not_overflow():
    assert backoff_delay(10_000, 0.5, 60.0, 0.0, MIDDLE) == 60.0


@pytest.mark.parametrize("args", [(0, 1.0, 1.0, 0.1), (1, -1.0, 1.0, 0.1), (1, 1.0, 1.0, 1.5)])
def test_invalid_arguments_are_refused(args):
    with pytest.raises(ValueError):
        backoff_delay(*args, rng=MIDDLE)


@given(attempt=st.integers(1, 200), initial=st.floats(0.001, 100), cap=st.floats(0.001, 1000),
       jitter=st.floats(0, 1), r=st.floats(0, 0.999999))
def test_delay_is_always_between_zero_and_the_cap(attempt, initial, cap, jitter, r):
    delay = backoff_delay(attempt, initial, cap, jitter, lambda: r)
    assert 0.0 <= delay <= cap
