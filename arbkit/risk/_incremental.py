"""Incremental risk for the live engine: update VaR inputs after a fill without recomputing the book.

The state keeps what a full computation would rebuild: the scenario factor returns (historical or Monte
Carlo), the book's P&L in each scenario, the covariance, ``S e`` and ``e' S e``. A fill that changes the
exposure by ``d`` on ``k`` factors updates them in O(T k + N k):

    pnl += R[:, f] @ d        S e += S[:, f] @ d        e' S e += 2 d . (S e)[f] + d' S[f, f] d

and `incremental_figures` reads the VaR/ES off the updated state. The state is an immutable value: each
update returns a new one, so the engine can keep the previous state for a rollback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from arbkit.risk._checks import as_confidences, as_covariance, as_finite_1d, as_finite_2d, sample_covariance
from arbkit.risk._errors import RiskInputError
from arbkit.risk._metrics import DEFAULT_CONFIDENCES, expected_shortfall, value_at_risk
from arbkit.risk._var import RiskFigures

__all__ = ["IncrementalRisk", "apply_fill", "incremental_figures", "init_incremental"]


class IncrementalRisk(NamedTuple):
    """Carried risk state of a linear book (see the module docstring for the update rules)."""

    exposure: NDArray[np.float64]
    scenario_returns: NDArray[np.float64]
    scenario_pnl: NDArray[np.float64]
    covariance: NDArray[np.float64]
    covariance_exposure: NDArray[np.float64]
    variance: float


def init_incremental(
    exposure: ArrayLike, scenario_returns: ArrayLike, covariance: ArrayLike | None = None
) -> IncrementalRisk:
    """Full computation of the state: ``O(T N + N^2)``; done once at start-up or after a data refresh.

    ``covariance`` defaults to the sample covariance (``ddof=1``) of the scenario returns, in which case the
    parametric figures equal `value_at_risk(pnl, method="parametric")` on the scenario P&L.
    """
    weights = as_finite_1d(exposure, "exposure")
    returns = as_finite_2d(scenario_returns, "scenario_returns")
    if returns.shape[1] != weights.size:
        raise RiskInputError("scenario_returns", f"has {returns.shape[1]} columns, expected {weights.size}")
    if covariance is None:
        cov = sample_covariance(returns, "scenario_returns")
    else:
        cov, _, _ = as_covariance(covariance, weights.size)
    cov_e = cov @ weights
    variance = max(float(weights @ cov_e), 0.0)  # >= -rounding for a semidefinite matrix
    return IncrementalRisk(weights, returns, returns @ weights, cov, cov_e, variance)


def apply_fill(state: IncrementalRisk, factor: ArrayLike, notional_delta: ArrayLike) -> IncrementalRisk:
    """Return the state after the exposure changes by ``notional_delta`` on the ``factor`` columns.

    Repeated factors are summed; the input state is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> state = init_incremental([0.0, 0.0], np.array([[0.01, 0.02], [-0.01, 0.0], [0.0, 0.01]]))
    >>> state = apply_fill(state, [0, 1], [100.0, -100.0])
    >>> state.scenario_pnl.round(12).tolist()
    [-1.0, -1.0, -1.0]
    """
    factors = np.atleast_1d(np.asarray(factor))
    deltas = as_finite_1d(np.atleast_1d(np.asarray(notional_delta, dtype=np.float64)), "notional_delta")
    if factors.dtype.kind not in "iu" or factors.shape != deltas.shape:
        raise RiskInputError("factor", "expected one integer factor column per delta")
    n = state.exposure.size
    if factors.min() < 0 or factors.max() >= n:
        raise RiskInputError("factor", f"column outside the {n} risk factors")
    columns, inverse = np.unique(factors, return_inverse=True)
    d = np.bincount(inverse, weights=deltas, minlength=columns.size)
    exposure = state.exposure.copy()
    exposure[columns] += d
    cov_cols = state.covariance[:, columns]
    variance = state.variance + 2.0 * float(d @ state.covariance_exposure[columns])
    variance += float(d @ cov_cols[columns] @ d)
    return IncrementalRisk(
        exposure=exposure,
        scenario_returns=state.scenario_returns,
        scenario_pnl=state.scenario_pnl + state.scenario_returns[:, columns] @ d,
        covariance=state.covariance,
        covariance_exposure=state.covariance_exposure + cov_cols @ d,
        variance=max(variance, 0.0),
    )


def incremental_figures(
    state: IncrementalRisk,
    confidence: float | Sequence[float] = DEFAULT_CONFIDENCES,
    method: str = "historical",
    *,
    horizon: float = 1.0,
) -> RiskFigures:
    """VaR and ES of the carried state: ``"historical"`` reads the scenario P&L (Hull's rule, as
    `value_at_risk`), ``"parametric"`` uses the scenario P&L mean and ``sqrt(e' S e)`` (ddof as the
    covariance given to `init_incremental`)."""
    levels = as_confidences(confidence)
    if method == "historical":
        var = value_at_risk(state.scenario_pnl, levels, "historical", horizon=horizon)
        es = expected_shortfall(state.scenario_pnl, levels, "historical", horizon=horizon)
    elif method == "parametric":
        mean = float(state.scenario_pnl.mean()) * horizon
        std = math.sqrt(state.variance * horizon)
        z = ndtri(1.0 - levels)
        density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        var = -(mean + std * z) + 0.0
        es = -mean + std * density / (1.0 - levels) + 0.0
    else:
        raise RiskInputError("method", f"expected 'historical' or 'parametric', got {method!r}")
    return RiskFigures(confidence=levels, var=var, es=es, method=method, horizon=horizon)
