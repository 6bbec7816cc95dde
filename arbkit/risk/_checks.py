"""Input validation shared by the risk modules: every array is checked once, at the public boundary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from arbkit.risk._errors import RiskInputError

__all__ = ["as_confidences", "as_covariance", "as_finite_1d", "as_finite_2d", "sample_covariance", "tail_count"]


def as_finite_1d(values: ArrayLike, field: str, *, allow_empty: bool = False) -> NDArray[np.float64]:
    """Return ``values`` as a 1-D float64 array, raising `RiskInputError` on NaN, inf or a wrong rank."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(field, f"not numeric ({exc})") from exc
    if array.ndim != 1:
        raise RiskInputError(field, f"expected a 1-D array, got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise RiskInputError(field, "is empty")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise RiskInputError(field, f"contains NaN or inf (first at index {bad})")
    return array


def as_finite_2d(values: ArrayLike, field: str) -> NDArray[np.float64]:
    """Return ``values`` as a non-empty 2-D float64 array of finite numbers."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(field, f"not numeric ({exc})") from exc
    if array.ndim != 2:
        raise RiskInputError(field, f"expected a 2-D array, got shape {array.shape}")
    if array.size == 0:
        raise RiskInputError(field, "is empty")
    if not np.all(np.isfinite(array)):
        row, col = np.argwhere(~np.isfinite(array))[0]
        raise RiskInputError(field, f"contains NaN or inf (first at row {row}, column {col})")
    return array


def as_covariance(
    covariance: ArrayLike, size: int | None, *, tolerance: float = 1e-10
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Check a covariance matrix and return it with its eigen-decomposition ``(matrix, eigenvalues, eigenvectors)``.

    The matrix must be finite, square (``size`` x ``size`` when given), symmetric and positive *semi*-definite:
    eigenvalues down to ``-tolerance * max_eigenvalue`` are rounding noise (a singular matrix is fine), anything
    more negative raises, since it would give some book a negative variance that a ``sqrt(max(v, 0))`` turns
    into a VaR of 0 that passes every limit.
    """
    matrix = as_finite_2d(covariance, "covariance")
    if matrix.shape[0] != matrix.shape[1]:
        raise RiskInputError("covariance", f"must be square, got shape {matrix.shape}")
    if size is not None and matrix.shape != (size, size):
        raise RiskInputError("covariance", f"expected shape {(size, size)}, got {matrix.shape}")
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-14):
        raise RiskInputError("covariance", "must be symmetric")
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    largest = max(float(eigenvalues.max()), 0.0)
    if float(eigenvalues.min()) < -tolerance * max(largest, 1e-300):
        raise RiskInputError(
            "covariance", f"not positive semidefinite (smallest eigenvalue {float(eigenvalues.min()):.3g})"
        )
    return matrix, eigenvalues, eigenvectors


def sample_covariance(returns: NDArray[np.float64], field: str) -> NDArray[np.float64]:
    """Sample covariance (``ddof=1``) of the columns of ``returns``, shape (N, N); at least 2 rows are needed."""
    if returns.shape[0] < 2:
        raise RiskInputError(field, f"a sample covariance needs at least 2 periods, got {returns.shape[0]}")
    n = returns.shape[1]
    return np.asarray(np.cov(returns, rowvar=False, ddof=1), dtype=np.float64).reshape(n, n)


def as_confidences(confidence: float | Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the confidence level(s) as a 1-D array, each strictly inside (0, 1)."""
    levels = np.atleast_1d(np.asarray(confidence, dtype=np.float64))
    if levels.ndim != 1 or levels.size == 0:
        raise RiskInputError("confidence", "expected a number or a non-empty sequence of numbers")
    if not np.all((levels > 0.0) & (levels < 1.0)):
        raise RiskInputError("confidence", f"each level must lie strictly between 0 and 1, got {levels}")
    return levels


def tail_count(n: int, confidence: NDArray[np.float64]) -> NDArray[np.float64]:
    """Expected number of tail observations ``w = n (1 - alpha)``, snapped to an integer within 1e-9.

    ``500 * (1 - 0.99)`` is ``5.000000000000004`` in floating point; without the snap the ceiling rule
    would pick the 6th worst loss instead of Hull's 5th.
    """
    w = n * (1.0 - confidence)
    nearest = np.round(w)
    return np.where(np.abs(w - nearest) <= 1e-9 * np.maximum(1.0, w), nearest, w)
