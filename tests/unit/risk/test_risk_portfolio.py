"""Book netting, exposure metrics and portfolio VaR (incl. option revaluation) against plain references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from arbkit.risk import (
    Book,
    RiskInputError,
    basis_risk_pnl,
    concentration,
    covariance_square_root,
    days_to_liquidate,
    leg_risk,
    leverage_ratio,
    liquidity_ratio,
    portfolio_var,
    scenario_pnl,
)


def _arb_book() -> Book:
    return Book.from_arrays(
        venue=["binance", "okx", "okx", "bybit"],
        instrument=["BTC/USDT", "BTC/USDT:USDT", "ETH/USDT", "ETH/USDT"],
        asset=["BTC", "BTC", "ETH", "ETH"],
        factor=[0, 1, 2, 2],
        quantity=[1.0, -1.0, 10.0, -4.0],
        price=[60_000.0, 60_100.0, 3_000.0, 3_001.0],
    )


def test_netting_and_exposure_tables() -> None:
    book = _arb_book()
    np.testing.assert_allclose(book.net_exposures(3), [60_000.0, -60_100.0, 30_000.0 - 12_004.0])
    assert book.gross_notional == pytest.approx(60_000 + 60_100 + 30_000 + 12_004)
    by_asset = dict(zip(*[book.exposures("asset")[c].to_list() for c in ("asset", "net_notional")], strict=True))
    assert by_asset == pytest.approx({"BTC": -100.0, "ETH": 17_996.0})
    by_venue = book.exposures("venue")
    assert by_venue["venue"].to_list() == ["binance", "bybit", "okx"]
    assert by_venue["gross_notional"].to_list() == pytest.approx([60_000.0, 12_004.0, 90_100.0])


def test_book_rejects_missing_prices_and_nan() -> None:
    kwargs = {"venue": ["a"], "instrument": ["X"], "asset": ["X"], "factor": [0], "quantity": [1.0]}
    with pytest.raises(RiskInputError) as info:
        Book.from_arrays(price=[float("nan")], **kwargs)  # type: ignore[arg-type]
    assert info.value.field == "price"
    with pytest.raises(RiskInputError, match="price"):
        Book.from_arrays(price=[0.0], **kwargs)  # type: ignore[arg-type]


def test_concentration_leverage_liquidity() -> None:
    c = concentration([10.0, -30.0, 60.0], ["a", "b", "c"])
    assert (c.largest_weight, c.largest_key) == (0.6, "c")
    assert c.herfindahl == pytest.approx(0.1**2 + 0.3**2 + 0.6**2)
    assert concentration([]).herfindahl == 0.0
    assert leverage_ratio(250.0, 100.0) == 2.5
    with pytest.raises(RiskInputError, match="equity"):
        leverage_ratio(1.0, 0.0)
    np.testing.assert_array_equal(liquidity_ratio([3.0, 1.0], [6.0, 0.0]), [0.5, math.inf])
    np.testing.assert_allclose(days_to_liquidate([10.0], [50.0], participation=0.1), [2.0])


def test_leg_risk_half_filled_arbitrage() -> None:
    table = leg_risk(["x", "x", "y", "y"], [500.0, -500.0, 100.0, -100.0], [500.0, 0.0, 100.0, -100.0])
    assert table.rows() == [("x", 500.0, 500.0, 0.5), ("y", 0.0, 0.0, 1.0)]
    with pytest.raises(RiskInputError, match="filled_notional"):
        leg_risk(["x"], [100.0], [-50.0])


def test_basis_decomposition_of_hedged_pair() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.02, 500)
    spot, perp = common + rng.normal(0, 1e-3, 500), common + rng.normal(0, 1e-3, 500)
    book = Book.from_arrays(
        venue=["binance", "okx"],
        instrument=["BTC/USDT", "BTC/USDT:USDT"],
        asset=["BTC", "BTC"],
        factor=[0, 1],
        quantity=[1.0, -1.0],
        price=[100.0, 100.0],
    )
    returns = np.column_stack([spot, perp])
    directional, basis = basis_risk_pnl(book, returns)
    np.testing.assert_allclose(directional, 0.0, atol=1e-12)
    np.testing.assert_allclose(basis, 100.0 * (spot - perp), atol=1e-12)


def test_historical_full_revaluation_of_an_option_book() -> None:
    # Long 10 calls hedged with -5 units of the underlying; revaluation by Black-Scholes written here.
    def call(spot: np.ndarray) -> np.ndarray:
        k, t, r, v = 100.0, 0.25, 0.0, 0.5
        d1 = (np.log(spot / k) + (r + 0.5 * v * v) * t) / (v * math.sqrt(t))
        return spot * stats.norm.cdf(d1) - k * math.exp(-r * t) * stats.norm.cdf(d1 - v * math.sqrt(t))

    def revalue(prices: np.ndarray) -> np.ndarray:
        return 10.0 * call(prices[:, 0]) - 5.0 * prices[:, 0]

    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.03, size=(500, 1))
    pnl = scenario_pnl([0.0], returns, revalue=revalue, prices=[100.0])
    expected = (
        10 * call(100 * (1 + returns[:, 0])) - 5 * 100 * (1 + returns[:, 0]) - (10 * call(np.array([100.0]))[0] - 500)
    )
    np.testing.assert_allclose(pnl, expected, rtol=0, atol=1e-9)
    figures = portfolio_var([0.0], returns, 0.99, revalue=revalue, prices=[100.0])
    assert figures.var[0] == pytest.approx(sorted(-expected)[-5], abs=1e-9)
    mc = portfolio_var([0.0], returns, 0.99, "monte_carlo", revalue=revalue, prices=[100.0], n_scenarios=20_000)
    assert mc.es[0] >= mc.var[0] > 0.0


def test_monte_carlo_linear_matches_parametric_with_correlation() -> None:
    rng = np.random.default_rng(2)
    cov = np.array([[4e-4, 1.5e-4, 0.0], [1.5e-4, 2.25e-4, 0.0], [0.0, 0.0, 1e-4]])
    returns = rng.multivariate_normal(np.zeros(3), cov, size=750)
    e = np.array([1e6, -5e5, 2e5])
    sd = math.sqrt(e @ np.cov(returns, rowvar=False) @ e)
    n = 100_000
    se = sd * math.sqrt(0.99 * 0.01 / n) / stats.norm.pdf(stats.norm.ppf(0.99))
    mc = portfolio_var(e, returns, 0.99, "monte_carlo", n_scenarios=n, seed=3)
    param = portfolio_var(e, returns, 0.99, "parametric")
    assert abs(mc.var[0] - param.var[0]) < 4 * se


def test_singular_covariance_and_non_psd() -> None:
    cov = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    root = covariance_square_root(cov)
    np.testing.assert_allclose(root @ root.T, cov, atol=1e-12)
    with pytest.raises(RiskInputError, match="positive semidefinite"):
        covariance_square_root([[1.0, 2.0], [2.0, 1.0]])
    # Duplicate factor (two venues' identical prices): long one, short the other -> zero Monte Carlo risk.
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, 300)
    figures = portfolio_var([1e6, -1e6], np.column_stack([r, r]), 0.99, "monte_carlo", n_scenarios=1000)
    assert figures.var[0] == pytest.approx(0.0, abs=1e-6)


def test_portfolio_var_shape_mismatch() -> None:
    with pytest.raises(RiskInputError, match="exposures"):
        portfolio_var([1.0, 2.0], np.zeros((10, 3)), 0.99)


def test_empty_book_is_defined_not_an_error() -> None:
    empty = Book.from_arrays(venue=[], instrument=[], asset=[], factor=[], quantity=[], price=[])
    assert empty.gross_notional == 0.0
    assert empty.net_exposures(3).tolist() == [0.0, 0.0, 0.0]
    assert concentration([]) == concentration([0.0, 0.0])  # no holdings: (0, None, 0), never NaN
    assert concentration([]).largest_key is None
    # an empty exposure vector has no risk factor to price: a clear error, not a VaR of NaN
    with pytest.raises(RiskInputError, match="is empty"):
        portfolio_var([], np.zeros((10, 0)), 0.99)


def test_monte_carlo_needs_two_periods_for_its_sample_covariance() -> None:
    with pytest.raises(RiskInputError, match="at least 2 periods") as info:
        portfolio_var([1.0], np.array([[0.01]]), 0.99, "monte_carlo", n_scenarios=1_000)
    assert info.value.field == "returns"
