"""The planner's cheap numpy idioms give exactly what the general numpy functions give."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mbcas.core.arrays import first_of, nan_to

_values = arrays(np.float64, st.integers(0, 30), elements=st.floats(allow_infinity=False, width=64))


@given(_values, st.floats(-5, 5))
def test_nan_to_is_nan_to_num_on_finite_and_nan_values(values: np.ndarray, fill: float) -> None:
    np.testing.assert_array_equal(nan_to(values, fill), np.nan_to_num(values, nan=fill))


def test_nan_to_keeps_infinities() -> None:
    out = nan_to(np.array([np.nan, np.inf, -np.inf, 1.5]), 0.0)
    np.testing.assert_array_equal(out, [0.0, np.inf, -np.inf, 1.5])


@given(
    st.integers(1, 20).flatmap(
        lambda n: st.tuples(
            *(arrays(np.bool_, n) for _ in range(3)), arrays(np.float64, n, elements=st.floats(-9, 9))
        )
    )
)
def test_first_of_is_select(case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, c, x = case
    conditions, choices = [a, b, c], [x, 2.0, -x]
    np.testing.assert_array_equal(
        first_of(conditions, choices, 7.0), np.select(conditions, choices, default=7.0)
    )
    np.testing.assert_array_equal(first_of([a, b], [1, 2], default=0), np.select([a, b], [1, 2], default=0))
