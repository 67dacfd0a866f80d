"""Bad input to the market functions: a ValueError that names the argument, index and value."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from mbcas.market import InfeasibleError, nsw_objective, solve_nsw

GOOD_W = [1.0, 1.0, 1.0, 1.0]
GOOD_L = [0.0, 0.0, 0.0, 0.0]
GOOD_U = [1.0, 1.0, 1.0, 1.0]


def with_value(values: list[float], i: int, v: float) -> list[float]:
    out = list(values)
    out[i] = v
    return out


@pytest.mark.parametrize(
    ("arg", "value", "pattern"),
    [
        ("weights", math.nan, r"weights\[2\] = nan is not finite"),
        ("weights", math.inf, r"weights\[2\] = inf is not finite"),
        ("weights", 0.0, r"weights\[2\] = 0.0 must be > 0"),
        ("weights", -3.0, r"weights\[2\] = -3.0 must be > 0"),
        ("lower", math.nan, r"lower\[2\] = nan is not finite"),
        ("lower", -0.5, r"lower\[2\] = -0.5 must be >= 0"),
        ("upper", math.inf, r"upper\[2\] = inf is not finite"),
        ("upper", -math.inf, r"upper\[2\] = -inf is not finite"),
        ("upper", -1.0, r"upper\[2\] = -1.0 must be >= 0"),
        ("lower", 2.0, r"lower\[2\] = 2.0 > upper\[2\] = 1.0"),
    ],
)
def test_solve_nsw_names_the_bad_element(arg: str, value: float, pattern: str) -> None:
    args = {"weights": GOOD_W, "lower": GOOD_L, "upper": GOOD_U}
    args[arg] = with_value(args[arg], 2, value)
    with pytest.raises(ValueError, match=pattern) as info:
        solve_nsw(2.0, args["weights"], args["lower"], args["upper"])
    assert not isinstance(info.value, InfeasibleError)


def test_first_offending_index_is_named_when_several_are_bad() -> None:
    with pytest.raises(ValueError, match=r"weights\[1\] = -1.0"):
        solve_nsw(1.0, [1.0, -1.0, -2.0], [0, 0, 0], [1, 1, 1])


@pytest.mark.parametrize(
    ("capacity", "pattern"),
    [
        (math.nan, r"capacity = nan is not finite"),
        (math.inf, r"capacity = inf is not finite"),
        (-1.0, r"capacity = -1.0 must be >= 0"),
        ("lots", r"capacity must be a real number, got 'lots'"),
        (None, r"capacity must be a real number, got None"),
    ],
)
def test_solve_nsw_rejects_bad_capacity(capacity: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        solve_nsw(capacity, GOOD_W, GOOD_L, GOOD_U)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weights", "lower", "upper", "pattern"),
    [
        ([1, 1, 1], [0, 0], [1, 1, 1], r"lower has length 2 but weights has length 3"),
        ([1, 1], [0, 0], [1, 1, 1], r"upper has length 3 but weights has length 2"),
        ([[1, 1]], [0, 0], [1, 1], r"weights must be 1-D, got an array of shape \(1, 2\)"),
        (1.0, [0], [1], r"weights must be 1-D"),
        (["a", "b"], [0, 0], [1, 1], r"weights must be a 1-D sequence of real numbers"),
    ],
)
def test_solve_nsw_rejects_bad_shapes(weights: object, lower: object, upper: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        solve_nsw(1.0, weights, lower, upper)  # type: ignore[arg-type]


def test_infeasible_is_a_value_error_with_both_totals() -> None:
    with pytest.raises(ValueError, match=r"lower bounds add up to 3.0, more than the capacity 2.5"):
        solve_nsw(2.5, GOOD_W, [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0])


def test_nsw_objective_errors() -> None:
    with pytest.raises(ValueError, match=r"x\[1\] = -1.0 must be >= 0"):
        nsw_objective([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"weights\[0\] = 0.0 must be > 0"):
        nsw_objective([1.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"weights has length 1 but x has length 2"):
        nsw_objective([1.0, 1.0], [1.0])


def test_errors_do_not_mutate_inputs() -> None:
    w = np.array([1.0, -1.0])
    lo = np.array([0.0, 0.0])
    with pytest.raises(ValueError):
        solve_nsw(1.0, w, lo, [1.0, 1.0])
    np.testing.assert_array_equal(w, [1.0, -1.0])
    np.testing.assert_array_equal(lo, [0.0, 0.0])


def test_infeasible_error_survives_pickling() -> None:
    err = InfeasibleError(2.0, 3.0, what="the floors")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, InfeasibleError)
    assert (back.capacity, back.total_lower, str(back)) == (2.0, 3.0, str(err))
