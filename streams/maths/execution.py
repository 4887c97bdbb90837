"""Execution quality: how much of what we asked for got filled, and how well the
slippage model predicted the slippage we actually paid.

Slippage is in basis points; the error convention is ``realized − predicted``, so a
positive mean error means the model under-predicts slippage (fills are worse than
forecast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SlippageError", "fill_ratio", "slippage_error"]


def _as_finite_1d(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` as a 1-D float64 array (a scalar becomes length 1); NaN/inf rejected."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {values!r}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a scalar or one-dimensional, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        position = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite, got {array[position]} at index {position}")
    return array


def fill_ratio(filled: ArrayLike, requested: ArrayLike) -> float | None:
    """Filled quantity over requested quantity, in [0, 1].

    Accepts scalars or equal-length arrays (one entry per order); for arrays the
    ratio is ``sum(filled) / sum(requested)`` (quantity-weighted, not a mean of ratios).
    Returns ``None`` when nothing was requested.

    Raises ``ValueError`` for NaN/inf or negative quantities, mismatched lengths, and
    any order whose fill exceeds its request (an overfill cannot happen in a correct
    OMS, so it signals a data bug rather than a great fill rate).
    """
    if (type(filled) in (int, float) and type(requested) in (int, float)
            and math.isfinite(filled) and math.isfinite(requested)
            and 0 <= filled <= requested):  # the scalar case of the agents, without numpy
        return None if requested == 0 else min(1.0, filled / requested)
    filled_array = _as_finite_1d("filled", filled)
    requested_array = _as_finite_1d("requested", requested)
    if filled_array.shape != requested_array.shape:
        raise ValueError(
            f"filled has {filled_array.size} values but requested has {requested_array.size}"
        )
    for name, array in (("filled", filled_array), ("requested", requested_array)):
        negative = array < 0
        if negative.any():
            position = int(np.argmax(negative))
            raise ValueError(
                f"{name} must be non-negative, got {array[position]} at index {position}"
            )
    overfilled = filled_array > requested_array
    if overfilled.any():
        position = int(np.argmax(overfilled))
        raise ValueError(
            f"filled ({filled_array[position]}) exceeds requested "
            f"({requested_array[position]}) at index {position}: overfills are impossible"
        )
    total_requested = float(requested_array.sum())
    if total_requested == 0.0:
        return None
    # Elementwise filled <= requested bounds the ratio by 1 up to summation rounding.
    return min(1.0, float(filled_array.sum()) / total_requested)


@dataclass(frozen=True, slots=True)
class SlippageError:
    """Error of predicted versus realized slippage, ``error = realized − predicted``.

    Attributes:
        mean_error_bps: signed mean error (bias); positive means slippage was
            under-predicted.
        rmse_bps: root-mean-square error; always ``>= abs(mean_error_bps)``.
        count: number of fills compared.
    """

    mean_error_bps: float
    rmse_bps: float
    count: int


def slippage_error(predicted_bps: ArrayLike, realized_bps: ArrayLike) -> SlippageError | None:
    """Signed mean error and RMSE of slippage predictions, per fill.

    Returns ``None`` for an empty window. Raises ``ValueError`` for mismatched lengths
    or NaN/inf values.
    """
    predicted = _as_finite_1d("predicted_bps", predicted_bps)
    realized = _as_finite_1d("realized_bps", realized_bps)
    if predicted.size != realized.size:
        raise ValueError(
            f"predicted_bps has {predicted.size} values but realized_bps has {realized.size}"
        )
    if predicted.size == 0:
        return None
    with np.errstate(over="ignore"):  # reported below as a ValueError instead
        errors = realized - predicted
    if not np.isfinite(errors).all():
        raise ValueError("realized_bps − predicted_bps overflows float64")
    mean_error = float(errors.mean())
    # RMSE² = mean² + variance; hypot of the two keeps RMSE >= |mean| exactly in floats
    # and avoids the underflow of squaring tiny errors.
    spread = float(np.sqrt(np.mean(np.square(errors - mean_error))))
    rmse = math.hypot(mean_error, spread)
    return SlippageError(mean_error_bps=mean_error, rmse_bps=rmse, count=int(errors.size))
