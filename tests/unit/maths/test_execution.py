from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.maths.execution import SlippageError, fill_ratio, slippage_error

# --- fill_ratio -----------------------------------------------------------------------


def test_fill_ratio_scalars() -> None:
    assert fill_ratio(75, 100) == 0.75
    assert fill_ratio(0, 100) == 0.0
    assert fill_ratio(100, 100) == 1.0


def test_fill_ratio_arrays_are_quantity_weighted() -> None:
    # Mean of per-order ratios would be (1 + 0) / 2 = 0.5; quantity-weighted is 10 / 110.
    assert fill_ratio([10, 0], [10, 100]) == pytest.approx(10 / 110)
    assert fill_ratio(np.array([1.5, 2.5]), np.array([2.0, 3.0])) == pytest.approx(4.0 / 5.0)


def test_nothing_requested_is_none() -> None:
    assert fill_ratio(0, 0) is None
    assert fill_ratio([], []) is None
    assert fill_ratio([0, 0], [0, 0]) is None


@pytest.mark.parametrize(
    ("filled", "requested", "message"),
    [
        (-1, 10, r"filled must be non-negative, got -1.0 at index 0"),
        (1, -10, r"requested must be non-negative, got -10.0 at index 0"),
        (math.nan, 10, r"filled must be finite, got nan at index 0"),
        ([1, 2], [1, math.inf], r"requested must be finite, got inf at index 1"),
        (12, 10, r"filled \(12.0\) exceeds requested \(10.0\) at index 0: overfills"),
        ([1, 5], [2, 4], r"filled \(5.0\) exceeds requested \(4.0\) at index 1"),
        ([1, 2], [1, 2, 3], r"filled has 2 values but requested has 3"),
        ([[1]], [[1]], r"filled must be a scalar or one-dimensional"),
        ("lots", 10, r"filled must be numeric"),
    ],
)
def test_fill_ratio_bad_input(filled: object, requested: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fill_ratio(filled, requested)  # type: ignore[arg-type]


quantities = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(quantities, st.floats(min_value=0.0, max_value=1.0)), min_size=1, max_size=50
    )
)
def test_fill_ratio_in_unit_interval(pairs: list[tuple[float, float]]) -> None:
    requested = np.array([q for q, _ in pairs])
    filled = requested * np.array([f for _, f in pairs])
    ratio = fill_ratio(filled, requested)
    if requested.sum() == 0:
        assert ratio is None
    else:
        assert ratio is not None
        assert 0.0 <= ratio <= 1.0


# --- slippage_error -------------------------------------------------------------------


def test_slippage_error_known_values() -> None:
    predicted = [2.0, 3.0, 5.0]
    realized = [3.0, 2.0, 8.0]  # errors +1, -1, +3
    result = slippage_error(predicted, realized)
    assert result == SlippageError(
        mean_error_bps=pytest.approx(1.0),  # type: ignore[arg-type]
        rmse_bps=pytest.approx(math.sqrt(11 / 3)),  # type: ignore[arg-type]
        count=3,
    )


def test_positive_mean_error_means_underpredicted_slippage() -> None:
    result = slippage_error([1.0, 1.0], [2.0, 2.0])
    assert result is not None
    assert result.mean_error_bps == 1.0
    assert result.rmse_bps == 1.0


def test_perfect_predictions() -> None:
    assert slippage_error([1.5, -2.0], [1.5, -2.0]) == SlippageError(0.0, 0.0, 2)


def test_scalar_inputs_are_one_fill() -> None:
    assert slippage_error(1.0, 4.0) == SlippageError(3.0, 3.0, 1)


def test_empty_window_is_none() -> None:
    assert slippage_error([], []) is None


@pytest.mark.parametrize(
    ("predicted", "realized", "message"),
    [
        ([1.0, 2.0], [1.0], r"predicted_bps has 2 values but realized_bps has 1"),
        ([1.0, math.nan], [1.0, 2.0], r"predicted_bps must be finite, got nan at index 1"),
        ([1.0], [-math.inf], r"realized_bps must be finite, got -inf at index 0"),
        ([1e308], [-1e308], r"overflows float64"),
    ],
)
def test_slippage_bad_input(predicted: list[float], realized: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slippage_error(predicted, realized)


bps = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(bps, bps), min_size=1, max_size=60))
def test_rmse_at_least_abs_mean_error(pairs: list[tuple[float, float]]) -> None:
    predicted = np.array([p for p, _ in pairs])
    realized = np.array([r for _, r in pairs])
    result = slippage_error(predicted, realized)
    assert result is not None
    assert result.rmse_bps >= abs(result.mean_error_bps)
    assert result.count == len(pairs)
    errors = realized - predicted
    assert result.mean_error_bps == pytest.approx(errors.mean(), rel=1e-9, abs=1e-6)
    assert result.rmse_bps == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-9, abs=1e-6)
