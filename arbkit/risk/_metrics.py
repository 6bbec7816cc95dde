"""Loss-distribution metrics on a P&L sample: VaR, expected shortfall, drawdown and Sharpe ratio.

Conventions (shared by every function here)
-------------------------------------------
* ``pnl`` is profit and loss in money (a gain is positive). VaR and ES are reported as **losses, positive
  numbers**: ``VaR = 5.0`` means "a loss of 5.0 is not exceeded with the stated confidence". A negative VaR
  means even the tail scenario is a gain.
* ``confidence`` is ``alpha`` in (0, 1), e.g. 0.99. A scalar gives a float, a sequence gives an array.
* Historical quantile rule (Hull, *Risk Management and Financial Institutions*, ch. "Historical
  Simulation"): with ``n`` scenarios and ``w = n (1 - alpha)``, VaR is the ``ceil(w)``-th worst loss
  (500 scenarios at 99% give the 5th worst). ES is the Acerbi & Tasche (2002, "On the coherence of expected
  shortfall") estimator: the mean of the ``w`` worst losses, the ``floor(w) + 1``-th counted with weight
  ``w - floor(w)``; for integer ``w`` it is Hull's "average of the w worst losses".
* Parametric (variance-covariance, Jorion, *Value at Risk*, ch. 5 and 7): mean and standard deviation with
  ``ddof=1``; ``include_mean=True`` keeps the mean (Jorion's absolute VaR), ``False`` gives the zero-mean
  VaR of Hull's worked examples. The Cornish-Fisher option (Jorion, sec. 5.2.4; Zangari 1996) corrects the
  normal quantile with the sample skewness and excess kurtosis, both population moments (``ddof=0``, as
  ``scipy.stats.skew``/``kurtosis`` with ``bias=True``). Its ES is the exact tail mean of the
  Cornish-Fisher quantile function, ``ES = (1 / (1 - alpha)) * integral_alpha^1 VaR_u du``.
* Horizon: ``horizon`` is in periods of the sample (days for daily P&L). Parametric and Monte Carlo scale the
  mean by ``h`` and the standard deviation by ``sqrt(h)`` (skewness by ``1/sqrt(h)``, excess kurtosis by
  ``1/h``, as for a sum of i.i.d. periods); historical VaR/ES scale the one-period figure by ``sqrt(h)``,
  the square-root-of-time rule Hull describes (an approximation when P&L is not i.i.d. normal).
* Monte Carlo on a P&L sample draws ``n_scenarios`` normal P&L values with the sample's mean and standard
  deviation (seeded, JAX) and applies the historical rule; it converges to the parametric figure. Monte Carlo
  over *positions* (correlated factors, option revaluation) is `portfolio_var`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from arbkit.risk._checks import as_confidences, as_finite_1d, tail_count
from arbkit.risk._errors import RiskInputError
from arbkit.risk._kernels import monte_carlo_normal_sample

__all__ = [
    "DEFAULT_CONFIDENCES",
    "Method",
    "expected_shortfall",
    "max_drawdown",
    "sharpe_ratio",
    "value_at_risk",
]

Method = Literal["historical", "parametric", "monte_carlo"]
DEFAULT_CONFIDENCES: tuple[float, float] = (0.95, 0.99)
_METHODS: tuple[str, ...] = ("historical", "parametric", "monte_carlo")
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _historical_var(pnl: NDArray[np.float64], levels: NDArray[np.float64]) -> NDArray[np.float64]:
    worst_first = np.sort(-pnl)[::-1]
    k = np.ceil(tail_count(pnl.size, levels)).astype(np.int64)
    return worst_first[np.clip(k, 1, pnl.size) - 1] + 0.0  # + 0.0 turns -0.0 into 0.0


def _historical_es(pnl: NDArray[np.float64], levels: NDArray[np.float64]) -> NDArray[np.float64]:
    worst_first = np.sort(-pnl)[::-1]
    cumulative = np.concatenate(([0.0], np.cumsum(worst_first)))
    w = np.minimum(tail_count(pnl.size, levels), float(pnl.size))
    whole = np.floor(w).astype(np.int64)
    fraction = w - whole
    partial_loss = worst_first[np.minimum(whole, pnl.size - 1)]
    return (cumulative[whole] + fraction * partial_loss) / w + 0.0


def _moments(pnl: NDArray[np.float64], field: str) -> tuple[float, float, float, float]:
    if pnl.size < 2:
        raise RiskInputError(field, "the parametric method needs at least 2 observations")
    mean = float(pnl.mean())
    centred = pnl - mean
    std = float(math.sqrt(centred @ centred / (pnl.size - 1)))
    m2 = float(centred @ centred) / pnl.size
    if m2 <= 0.0 or m2 <= (1e-12 * abs(mean)) ** 2:  # constant up to rounding: no shape to measure
        return mean, std, 0.0, 0.0
    z = centred / math.sqrt(m2)  # standardised first: m2**1.5 underflows to 0 for tiny P&L (1e-125)
    skew = float(np.mean(z**3))
    excess_kurtosis = float(np.mean(z**4)) - 3.0
    return mean, std, skew, excess_kurtosis


def _normal_tail(levels: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    z = ndtri(1.0 - levels)  # lower-tail quantile of the P&L, negative for alpha > 0.5
    density = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return z, density


def _cornish_fisher_z(z: NDArray[np.float64], skew: float, kurt: float) -> NDArray[np.float64]:
    return z + (z**2 - 1.0) * skew / 6.0 + (z**3 - 3.0 * z) * kurt / 24.0 - (2.0 * z**3 - 5.0 * z) * skew**2 / 36.0


def _cornish_fisher_tail_mean(
    z: NDArray[np.float64], density: NDArray[np.float64], tail: NDArray[np.float64], skew: float, kurt: float
) -> NDArray[np.float64]:
    # E[z_cf(Z) | Z < q] from the truncated normal moments E[Z^k 1{Z<q}]: M1 = -phi, M2 = p - q phi,
    # M3 = -(q^2 + 2) phi, with p = 1 - alpha.
    m1 = -density
    m2 = tail - z * density
    m3 = -(z**2 + 2.0) * density
    total = m1 + (m2 - tail) * skew / 6.0 + (m3 - 3.0 * m1) * kurt / 24.0 - (2.0 * m3 - 5.0 * m1) * skew**2 / 36.0
    return total / tail


def _parametric(
    pnl: NDArray[np.float64],
    levels: NDArray[np.float64],
    horizon: float,
    include_mean: bool,
    cornish_fisher: bool,
    shortfall: bool,
) -> NDArray[np.float64]:
    mean, std, skew, kurt = _moments(pnl, "pnl")
    mean_h = mean * horizon if include_mean else 0.0
    std_h = std * math.sqrt(horizon)
    z, density = _normal_tail(levels)
    if cornish_fisher:
        skew_h, kurt_h = skew / math.sqrt(horizon), kurt / horizon
        if shortfall:
            tail_z = _cornish_fisher_tail_mean(z, density, 1.0 - levels, skew_h, kurt_h)
        else:
            tail_z = _cornish_fisher_z(z, skew_h, kurt_h)
    else:
        tail_z = -density / (1.0 - levels) if shortfall else z
    return -(mean_h + std_h * tail_z) + 0.0


def _compute(
    pnl: ArrayLike,
    confidence: float | Sequence[float] | NDArray[np.float64],
    method: str,
    horizon: float,
    include_mean: bool,
    cornish_fisher: bool,
    n_scenarios: int,
    seed: int,
    shortfall: bool,
) -> float | NDArray[np.float64]:
    sample = as_finite_1d(pnl, "pnl")
    levels = as_confidences(confidence)
    if not (math.isfinite(horizon) and horizon > 0.0):
        raise RiskInputError("horizon", f"must be a positive number of periods, got {horizon}")
    if method not in _METHODS:
        raise RiskInputError("method", f"expected one of {_METHODS}, got {method!r}")
    if cornish_fisher and method != "parametric":
        raise RiskInputError("cornish_fisher", "only applies to method='parametric'")
    if method == "parametric":
        result = _parametric(sample, levels, horizon, include_mean, cornish_fisher, shortfall)
    else:
        if method == "monte_carlo":
            if n_scenarios < 2:
                raise RiskInputError("n_scenarios", f"must be at least 2, got {n_scenarios}")
            mean, std, _, _ = _moments(sample, "pnl")
            sample = monte_carlo_normal_sample(
                mean * horizon if include_mean else 0.0, std * math.sqrt(horizon), n_scenarios, seed
            )
            scale = 1.0
        else:
            if not include_mean:
                sample = sample - sample.mean()
            scale = math.sqrt(horizon)
        result = scale * (_historical_es(sample, levels) if shortfall else _historical_var(sample, levels))
    if np.ndim(confidence) == 0:
        return float(result[0])
    return result


@overload
def value_at_risk(
    pnl: ArrayLike,
    confidence: float,
    method: Method = ...,
    *,
    horizon: float = ...,
    include_mean: bool = ...,
    cornish_fisher: bool = ...,
    n_scenarios: int = ...,
    seed: int = ...,
) -> float: ...
@overload
def value_at_risk(
    pnl: ArrayLike,
    confidence: Sequence[float] | NDArray[np.float64] = ...,
    method: Method = ...,
    *,
    horizon: float = ...,
    include_mean: bool = ...,
    cornish_fisher: bool = ...,
    n_scenarios: int = ...,
    seed: int = ...,
) -> NDArray[np.float64]: ...
def value_at_risk(
    pnl: ArrayLike,
    confidence: float | Sequence[float] | NDArray[np.float64] = DEFAULT_CONFIDENCES,
    method: Method = "historical",
    *,
    horizon: float = 1.0,
    include_mean: bool = True,
    cornish_fisher: bool = False,
    n_scenarios: int = 100_000,
    seed: int = 0,
) -> float | NDArray[np.float64]:
    """Value at risk of a P&L sample, as a positive loss.

    The conventions (quantile rule, ddof, horizon scaling, the mean) are in the module docstring of
    `arbkit.risk._metrics`; in short: historical is Hull's ``ceil(n (1 - alpha))``-th worst loss,
    parametric is Jorion's variance-covariance VaR with ``ddof=1`` (optionally Cornish-Fisher), and
    Monte Carlo samples the fitted normal.

    Parameters
    ----------
    pnl
        1-D profit-and-loss sample in money (gains positive), one value per period or scenario. Must be
        finite and non-empty; NaN raises `RiskInputError` rather than producing a NaN VaR.
    confidence
        Level ``alpha`` or a sequence of levels; defaults to ``(0.95, 0.99)``.
    method
        ``"historical"``, ``"parametric"`` or ``"monte_carlo"``.
    horizon
        Horizon in sample periods (``10`` for a 10-day VaR from daily P&L).
    include_mean
        Keep the sample mean (absolute VaR). ``False`` measures the loss relative to the mean.
    cornish_fisher
        Parametric only: correct the normal quantile for skewness and excess kurtosis.
    n_scenarios, seed
        Monte Carlo sample size and the seed of its JAX key.

    Returns
    -------
    float or numpy.ndarray
        A float for a scalar ``confidence``, an array aligned with a sequence.

    Examples
    --------
    Hull's rule: with 100 scenarios the 95% VaR is the 5th worst loss.

    >>> import numpy as np
    >>> pnl = -np.arange(100.0)  # losses 0, 1, ..., 99
    >>> value_at_risk(pnl, 0.95)
    95.0
    >>> value_at_risk(pnl, [0.95, 0.99]).tolist()
    [95.0, 99.0]
    >>> round(value_at_risk([1.0, -1.0, 1.0, -1.0], 0.99, "parametric", include_mean=False), 4)
    2.6862
    """
    return _compute(pnl, confidence, method, horizon, include_mean, cornish_fisher, n_scenarios, seed, False)


@overload
def expected_shortfall(
    pnl: ArrayLike,
    confidence: float,
    method: Method = ...,
    *,
    horizon: float = ...,
    include_mean: bool = ...,
    cornish_fisher: bool = ...,
    n_scenarios: int = ...,
    seed: int = ...,
) -> float: ...
@overload
def expected_shortfall(
    pnl: ArrayLike,
    confidence: Sequence[float] | NDArray[np.float64] = ...,
    method: Method = ...,
    *,
    horizon: float = ...,
    include_mean: bool = ...,
    cornish_fisher: bool = ...,
    n_scenarios: int = ...,
    seed: int = ...,
) -> NDArray[np.float64]: ...
def expected_shortfall(
    pnl: ArrayLike,
    confidence: float | Sequence[float] | NDArray[np.float64] = DEFAULT_CONFIDENCES,
    method: Method = "historical",
    *,
    horizon: float = 1.0,
    include_mean: bool = True,
    cornish_fisher: bool = False,
    n_scenarios: int = 100_000,
    seed: int = 0,
) -> float | NDArray[np.float64]:
    """Expected shortfall (conditional VaR) of a P&L sample, as a positive loss.

    The mean loss beyond VaR: Acerbi & Tasche's estimator for historical and Monte Carlo samples,
    ``-mean + sigma * phi(z) / (1 - alpha)`` for the normal, and the exact tail mean of the
    Cornish-Fisher quantile with ``cornish_fisher=True``. It is never below the VaR of the same method
    and level. Parameters and conventions as in `value_at_risk`.

    Examples
    --------
    >>> import numpy as np
    >>> pnl = -np.arange(100.0)
    >>> expected_shortfall(pnl, 0.95)  # mean of the 5 worst losses 99, 98, 97, 96, 95
    97.0
    >>> round(expected_shortfall([1.0, -1.0, 1.0, -1.0], 0.99, "parametric", include_mean=False), 4)
    3.0775
    """
    return _compute(pnl, confidence, method, horizon, include_mean, cornish_fisher, n_scenarios, seed, True)


def max_drawdown(equity: ArrayLike, *, relative: bool = True) -> float:
    """Largest peak-to-trough decline of an equity curve, as a positive number.

    Parameters
    ----------
    equity
        1-D equity (account value) series in time order, finite and non-empty.
    relative
        ``True`` returns the decline as a fraction of the running peak (``0.25`` for a fall from 100 to
        75); the running peak must then stay positive. ``False`` returns the decline in money, which is
        what a P&L curve starting at zero needs.

    Returns
    -------
    float
        ``0.0`` for a curve that never falls below its previous peak.

    Examples
    --------
    >>> max_drawdown([100.0, 120.0, 90.0, 130.0, 117.0])
    0.25
    >>> max_drawdown([0.0, 5.0, -3.0, 2.0], relative=False)
    8.0
    """
    curve = as_finite_1d(equity, "equity")
    peak = np.maximum.accumulate(curve)
    if relative:
        if peak[0] <= 0.0:
            raise RiskInputError("equity", "relative drawdown needs a positive running peak; use relative=False")
        return float(np.max((peak - curve) / peak))
    return float(np.max(peak - curve))


def sharpe_ratio(returns: ArrayLike, periods_per_year: float, *, risk_free_rate: float = 0.0) -> float:
    """Annualised Sharpe ratio of periodic returns.

    ``sqrt(periods_per_year) * mean(r - rf) / std(r - rf, ddof=1)`` (Sharpe 1994, the ex-post ratio,
    annualised by the square root of time as is standard practice). ``risk_free_rate`` is per period.

    Raises
    ------
    RiskInputError
        On fewer than two returns, NaN (in the returns or the risk-free rate), or zero variance (the ratio is
        undefined, not infinite).

    Examples
    --------
    >>> round(sharpe_ratio([0.01, 0.02, 0.0, 0.01], periods_per_year=252), 4)
    19.4422
    """
    sample = as_finite_1d(returns, "returns")
    if sample.size < 2:
        raise RiskInputError("returns", "needs at least 2 observations")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0.0):
        raise RiskInputError("periods_per_year", f"must be positive, got {periods_per_year}")
    if not math.isfinite(risk_free_rate):
        raise RiskInputError("risk_free_rate", f"must be finite, got {risk_free_rate}")
    excess = sample - risk_free_rate
    std = float(np.std(excess, ddof=1))
    if std == 0.0:
        raise RiskInputError("returns", "zero variance: the Sharpe ratio is undefined")
    return float(math.sqrt(periods_per_year) * excess.mean() / std)
