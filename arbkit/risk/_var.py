"""Portfolio VaR and ES over positions: historical full revaluation, variance-covariance and Monte Carlo.

The book is reduced to a vector of signed notional exposures per risk factor (the columns of a return
matrix); legs of an arbitrage that load on the same factor net out here, and legs on different factors
(spot against perpetual, one venue's price against another's) keep the basis risk between them through the
factors' joint history or covariance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from arbkit.risk._checks import as_confidences, as_covariance, as_finite_1d, as_finite_2d, sample_covariance
from arbkit.risk._errors import RiskInputError
from arbkit.risk._kernels import monte_carlo_factor_returns, monte_carlo_portfolio_pnl
from arbkit.risk._metrics import DEFAULT_CONFIDENCES, Method, expected_shortfall, value_at_risk

__all__ = ["RevalueFn", "RiskFigures", "covariance_square_root", "portfolio_var", "scenario_pnl"]

RevalueFn = Callable[[NDArray[np.float64]], NDArray[np.float64]]
"""Full revaluation: factor prices of shape (S, N) to portfolio values of shape (S,)."""


@dataclass(frozen=True, slots=True)
class RiskFigures:
    """VaR and ES of one book at several confidence levels (positive losses, aligned with ``confidence``)."""

    confidence: NDArray[np.float64]
    var: NDArray[np.float64]
    es: NDArray[np.float64]
    method: str
    horizon: float


def covariance_square_root(covariance: ArrayLike, *, tolerance: float = 1e-10) -> NDArray[np.float64]:
    """Return ``L`` with ``L @ L.T == covariance`` for a positive *semi*-definite covariance.

    A Cholesky factor fails on singular matrices, which a hedged book produces routinely (two venues' prices
    of one asset, a factor duplicated by a synthetic). The symmetric eigen-decomposition handles them:
    eigenvalues down to ``-tolerance * max_eigenvalue`` are rounding noise and clipped to zero; anything
    more negative means the matrix is not a covariance and raises `RiskInputError`.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.array([[1.0, 1.0], [1.0, 1.0]])  # singular: perfectly correlated
    >>> root = covariance_square_root(cov)
    >>> bool(np.allclose(root @ root.T, cov))
    True
    """
    _, eigenvalues, eigenvectors = as_covariance(covariance, None, tolerance=tolerance)
    root: NDArray[np.float64] = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    return root


def _check_book(exposures: ArrayLike, returns: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    weights = as_finite_1d(exposures, "exposures")
    history = as_finite_2d(returns, "returns")
    if history.shape[1] != weights.size:
        raise RiskInputError("exposures", f"has {weights.size} factors but returns has {history.shape[1]} columns")
    return weights, history


def scenario_pnl(
    exposures: ArrayLike,
    returns: ArrayLike,
    *,
    revalue: RevalueFn | None = None,
    prices: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """P&L of the book in each historical scenario.

    Linear book: ``returns @ exposures`` (exposures are signed notionals, returns simple returns). With a
    ``revalue`` function the book is fully revalued (Hull's historical simulation): each scenario moves
    today's ``prices`` by that day's return, ``P&L_t = revalue(prices * (1 + r_t)) - revalue(prices)``.

    Examples
    --------
    >>> import numpy as np
    >>> scenario_pnl([100.0, -50.0], np.array([[0.5, 1.0], [0.25, -0.5]])).tolist()
    [0.0, 50.0]
    """
    weights, history = _check_book(exposures, returns)
    if revalue is None:
        linear: NDArray[np.float64] = history @ weights
        return linear
    if prices is None:
        raise RiskInputError("prices", "full revaluation needs today's factor prices")
    spot = as_finite_1d(prices, "prices")
    if spot.size != history.shape[1]:
        raise RiskInputError("prices", f"has {spot.size} factors but returns has {history.shape[1]} columns")
    return _revalued(revalue, spot, history)


def _revalued(
    revalue: RevalueFn, spot: NDArray[np.float64], factor_returns: NDArray[np.float64]
) -> NDArray[np.float64]:
    base = np.asarray(revalue(spot[None, :]), dtype=np.float64).reshape(-1)
    moved = np.asarray(revalue(spot[None, :] * (1.0 + factor_returns)), dtype=np.float64).reshape(-1)
    if base.size != 1 or moved.size != factor_returns.shape[0]:
        raise RiskInputError("revalue", "must map (S, N) prices to S portfolio values")
    pnl: NDArray[np.float64] = moved - base[0]
    if not np.all(np.isfinite(pnl)):
        raise RiskInputError("revalue", "returned NaN or inf for some scenario")
    return pnl


def portfolio_var(
    exposures: ArrayLike,
    returns: ArrayLike,
    confidence: float | Sequence[float] = DEFAULT_CONFIDENCES,
    method: Method = "historical",
    *,
    horizon: float = 1.0,
    include_mean: bool = True,
    cornish_fisher: bool = False,
    covariance: ArrayLike | None = None,
    revalue: RevalueFn | None = None,
    prices: ArrayLike | None = None,
    n_scenarios: int = 100_000,
    seed: int = 0,
) -> RiskFigures:
    """VaR and ES of a netted book of positions, by one of the three methods.

    Parameters
    ----------
    exposures
        Signed notional per risk factor, shape (N,): the netted multi-leg book (see `Book.net_exposures`).
    returns
        Simple returns of the N factors, shape (T, N), one row per period (e.g. 2 years of daily returns).
    confidence, horizon, include_mean, cornish_fisher
        As in `value_at_risk`.
    method
        ``"historical"``: the book's P&L in each past period (full revaluation when ``revalue`` is given).
        ``"parametric"``: variance-covariance on the book's P&L, ``mu.e`` and ``sqrt(e' S e)`` with the
        sample covariance (``ddof=1``), or Cornish-Fisher on that P&L's moments.
        ``"monte_carlo"``: ``n_scenarios`` correlated normal factor returns ``N(mu h, S h)`` drawn with a
        seeded JAX key (covariance square root by `covariance_square_root`, so singular matrices work);
        linear books use the exposures directly, options are revalued through ``revalue``.
    covariance
        Optional (N, N) covariance to use instead of the sample covariance of ``returns`` (parametric and
        Monte Carlo), e.g. an EWMA estimate.
    revalue, prices
        Full revaluation seam for non-linear books: ``revalue(factor_prices[S, N]) -> values[S]`` and
        today's factor prices. An option book passes a closure over ``arbkit.pricing.black_scholes``.
    n_scenarios, seed
        Monte Carlo size and seed.

    Returns
    -------
    RiskFigures
        VaR and ES per confidence level as positive losses.

    Examples
    --------
    A perfectly hedged pair (long and short the same factor) nets to zero risk:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = rng.normal(0.0, 0.01, size=(250, 1))
    >>> portfolio_var([0.0], r, 0.99).var.tolist()
    [0.0]
    """
    weights, history = _check_book(exposures, returns)
    levels = as_confidences(confidence)
    if revalue is not None:
        if prices is None:
            raise RiskInputError("prices", "full revaluation needs today's factor prices")
        spot = as_finite_1d(prices, "prices")
        if spot.size != weights.size:
            raise RiskInputError("prices", f"has {spot.size} factors, exposures has {weights.size}")
    if method == "monte_carlo":
        if n_scenarios < 2:
            raise RiskInputError("n_scenarios", f"must be at least 2, got {n_scenarios}")
        if not (math.isfinite(horizon) and horizon > 0.0):
            raise RiskInputError("horizon", f"must be a positive number of periods, got {horizon}")
        if covariance is None:
            cov = sample_covariance(history, "returns")
        else:
            cov = as_finite_2d(covariance, "covariance")
            if cov.shape != (weights.size, weights.size):
                raise RiskInputError("covariance", f"expected shape {(weights.size, weights.size)}")
        root = covariance_square_root(cov) * math.sqrt(horizon)
        mean = history.mean(axis=0) * horizon if include_mean else np.zeros(weights.size)
        if revalue is None:
            pnl = monte_carlo_portfolio_pnl(mean, root, weights, n_scenarios, seed)
        else:
            pnl = _revalued(revalue, spot, monte_carlo_factor_returns(mean, root, n_scenarios, seed))
        var = value_at_risk(pnl, levels, "historical")
        es = expected_shortfall(pnl, levels, "historical")
    else:
        pnl = history @ weights if revalue is None else _revalued(revalue, spot, history)
        if method == "parametric" and covariance is not None:
            var, es = _parametric_from_covariance(weights, history, covariance, levels, horizon, include_mean)
        else:
            var = value_at_risk(
                pnl, levels, method, horizon=horizon, include_mean=include_mean, cornish_fisher=cornish_fisher
            )
            es = expected_shortfall(
                pnl, levels, method, horizon=horizon, include_mean=include_mean, cornish_fisher=cornish_fisher
            )
    return RiskFigures(confidence=levels, var=var, es=es, method=method, horizon=horizon)


def _parametric_from_covariance(
    weights: NDArray[np.float64],
    history: NDArray[np.float64],
    covariance: ArrayLike,
    levels: NDArray[np.float64],
    horizon: float,
    include_mean: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from scipy.special import ndtri

    cov = as_finite_2d(covariance, "covariance")
    if cov.shape != (weights.size, weights.size):
        raise RiskInputError("covariance", f"expected shape {(weights.size, weights.size)}")
    variance = float(weights @ cov @ weights)
    if variance < -1e-12 * max(1.0, float(np.abs(cov).max()) * float(weights @ weights)):
        raise RiskInputError("covariance", "gives the book a negative variance")
    std = math.sqrt(max(variance, 0.0) * horizon)
    mean = float(history.mean(axis=0) @ weights) * horizon if include_mean else 0.0
    z = ndtri(1.0 - levels)
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return -(mean + std * z), -mean + std * density / (1.0 - levels)
