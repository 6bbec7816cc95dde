"""VaR/ES/drawdown/Sharpe against independent references: plain numpy/scipy formulas and Hull's examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from arbkit.risk import (
    RiskInputError,
    expected_shortfall,
    max_drawdown,
    portfolio_var,
    sharpe_ratio,
    value_at_risk,
)


def _reference_historical(pnl: np.ndarray, alpha: float) -> tuple[float, float]:
    # Hull: k-th worst loss with k = n(1 - alpha) when integral; ES = mean of the k worst losses.
    losses = sorted((-pnl).tolist(), reverse=True)
    k = round(len(losses) * (1 - alpha))
    return losses[k - 1], sum(losses[:k]) / k


def test_historical_matches_hulls_rule_500_scenarios() -> None:
    rng = np.random.default_rng(1)
    pnl = rng.standard_t(4, size=500) * 1000.0
    var_ref, es_ref = _reference_historical(pnl, 0.99)
    assert value_at_risk(pnl, 0.99) == pytest.approx(var_ref, rel=1e-15)
    assert expected_shortfall(pnl, 0.99) == pytest.approx(es_ref, rel=1e-12)
    var95, es95 = _reference_historical(pnl, 0.95)
    np.testing.assert_allclose(value_at_risk(pnl, [0.95, 0.99]), [var95, var_ref])
    np.testing.assert_allclose(expected_shortfall(pnl, [0.95, 0.99]), [es95, es_ref])


def test_historical_fractional_tail_acerbi_tasche() -> None:
    # n = 10, alpha = 0.75: w = 2.5 -> VaR is the 3rd worst loss, ES = (L1 + L2 + 0.5 L3) / 2.5.
    pnl = -np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    assert value_at_risk(pnl, 0.75) == 8.0
    assert expected_shortfall(pnl, 0.75) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)


def test_parametric_normal_closed_form() -> None:
    rng = np.random.default_rng(2)
    pnl = rng.normal(5.0, 100.0, size=300)
    mu, sd = pnl.mean(), pnl.std(ddof=1)
    for alpha in (0.95, 0.99):
        var_ref = -(mu + sd * stats.norm.ppf(1 - alpha))
        es_ref = -mu + sd * stats.norm.pdf(stats.norm.ppf(alpha)) / (1 - alpha)
        assert value_at_risk(pnl, alpha, "parametric") == pytest.approx(var_ref, rel=1e-12)
        assert expected_shortfall(pnl, alpha, "parametric") == pytest.approx(es_ref, rel=1e-12)
    ten_day = value_at_risk(pnl, 0.99, "parametric", horizon=10.0)
    assert ten_day == pytest.approx(-(10 * mu + math.sqrt(10) * sd * stats.norm.ppf(0.01)), rel=1e-12)
    assert value_at_risk(pnl, 0.99, "parametric", include_mean=False) == pytest.approx(
        sd * stats.norm.ppf(0.99), rel=1e-12
    )


def test_hull_microsoft_att_example() -> None:
    # Hull, Options, Futures and Other Derivatives (model-building approach): $10m Microsoft, daily vol 2%;
    # $5m AT&T, daily vol 1%; correlation 0.3. 10-day 99% VaR: about $1.47m, $0.367m, $1.62m together.
    cov = np.array([[200_000.0**2, 0.3 * 200_000 * 50_000], [0.3 * 200_000 * 50_000, 50_000.0**2]])
    cov /= np.array([[1e7 * 1e7, 1e7 * 5e6], [1e7 * 5e6, 5e6 * 5e6]])  # money covariance to return covariance
    returns = np.zeros((2, 2))  # mean zero; the covariance argument carries the risk
    options = {"method": "parametric", "horizon": 10.0, "include_mean": False, "covariance": cov}
    both = portfolio_var([1e7, 5e6], returns, 0.99, **options).var[0]  # type: ignore[arg-type]
    msft = portfolio_var([1e7, 0.0], returns, 0.99, **options).var[0]  # type: ignore[arg-type]
    att = portfolio_var([0.0, 5e6], returns, 0.99, **options).var[0]  # type: ignore[arg-type]
    assert msft == pytest.approx(1_470_000, rel=2e-3)
    assert att == pytest.approx(367_000, rel=3e-3)
    assert both == pytest.approx(1_620_000, rel=2e-3)


def test_cornish_fisher_against_formula_and_quadrature() -> None:
    rng = np.random.default_rng(3)
    pnl = rng.gamma(4.0, 10.0, size=2000) - 40.0  # right-skewed
    mu, sd = pnl.mean(), pnl.std(ddof=1)
    s, k = stats.skew(pnl), stats.kurtosis(pnl)

    def quantile(u: float) -> float:
        z = stats.norm.ppf(u)
        zc = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
        return -(mu + sd * zc)

    alpha = 0.99
    assert value_at_risk(pnl, alpha, "parametric", cornish_fisher=True) == pytest.approx(quantile(1 - alpha), rel=1e-12)
    tail, _ = integrate.quad(quantile, 0.0, 1 - alpha, limit=200)
    assert expected_shortfall(pnl, alpha, "parametric", cornish_fisher=True) == pytest.approx(
        tail / (1 - alpha), rel=1e-7
    )


def test_monte_carlo_converges_to_parametric_within_standard_error() -> None:
    rng = np.random.default_rng(4)
    pnl = rng.normal(0.0, 250.0, size=750)
    sd = pnl.std(ddof=1)
    n, alpha = 100_000, 0.99
    q = stats.norm.ppf(alpha)
    se = sd * math.sqrt(alpha * (1 - alpha) / n) / stats.norm.pdf(q)
    mc = value_at_risk(pnl, alpha, "monte_carlo", n_scenarios=n, seed=7)
    assert abs(mc - value_at_risk(pnl, alpha, "parametric")) < 4 * se
    es_mc = expected_shortfall(pnl, alpha, "monte_carlo", n_scenarios=n, seed=7)
    assert es_mc == pytest.approx(expected_shortfall(pnl, alpha, "parametric"), rel=0.02)
    assert mc == value_at_risk(pnl, alpha, "monte_carlo", n_scenarios=n, seed=7)  # seeded


def test_max_drawdown_brute_force() -> None:
    rng = np.random.default_rng(5)
    equity = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 200)))
    brute = max((equity[i] - equity[j]) / equity[i] for i in range(equity.size) for j in range(i, equity.size))
    assert max_drawdown(equity) == pytest.approx(brute, rel=1e-12)
    assert max_drawdown([1.0, 2.0, 3.0]) == 0.0
    with pytest.raises(RiskInputError, match="equity"):
        max_drawdown([0.0, -1.0])


def test_sharpe_ratio_formula() -> None:
    r = np.array([0.01, -0.005, 0.02, 0.0, 0.004])
    expected = math.sqrt(365) * (r - 0.0001).mean() / (r - 0.0001).std(ddof=1)
    assert sharpe_ratio(r, 365, risk_free_rate=0.0001) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(RiskInputError, match="zero variance"):
        sharpe_ratio([0.01, 0.01], 252)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pnl": [1.0, float("nan")], "confidence": 0.99}, "pnl"),
        ({"pnl": [], "confidence": 0.99}, "pnl"),
        ({"pnl": [1.0, 2.0], "confidence": 1.0}, "confidence"),
        ({"pnl": [1.0, 2.0], "confidence": 0.99, "method": "delta"}, "method"),
        ({"pnl": [1.0], "confidence": 0.99, "method": "parametric"}, "pnl"),
        ({"pnl": [1.0, 2.0], "confidence": 0.99, "horizon": 0.0}, "horizon"),
        ({"pnl": [1.0, 2.0], "confidence": 0.99, "cornish_fisher": True}, "cornish_fisher"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RiskInputError) as info:
        value_at_risk(**kwargs)  # type: ignore[call-overload]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (([0.01, 0.02, 0.0], 252), {"risk_free_rate": float("nan")}, "risk_free_rate"),
        (([0.01, 0.02, 0.0], float("nan")), {}, "periods_per_year"),
        (([0.01, float("nan"), 0.0], 252), {}, "returns"),
    ],
)
def test_sharpe_never_returns_nan(args: tuple[object, ...], kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RiskInputError) as info:
        sharpe_ratio(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
