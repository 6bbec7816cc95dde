"""Invariants of the risk measures, over random P&L samples and books (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arbkit.risk import Book, expected_shortfall, portfolio_var, value_at_risk

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = arrays(np.float64, st.integers(20, 300), elements=finite)
levels = st.floats(0.5, 0.999)
methods = st.sampled_from(["historical", "parametric"])


@settings(max_examples=60, deadline=None)
@given(pnl=samples, a=levels, b=levels, method=methods)
@example(pnl=np.full(20, 2.09686799e-125), a=0.5, b=0.5, method="parametric")  # was a ZeroDivisionError
def test_var_monotone_in_confidence(pnl: np.ndarray, a: float, b: float, method: str) -> None:
    low, high = sorted((a, b))
    assert value_at_risk(pnl, low, method) <= value_at_risk(pnl, high, method) + 1e-9 * (1 + np.abs(pnl).max())  # type: ignore[call-overload]


@settings(max_examples=60, deadline=None)
@given(pnl=samples, alpha=levels, method=methods)
def test_es_at_least_var(pnl: np.ndarray, alpha: float, method: str) -> None:
    tol = 1e-9 * (1 + np.abs(pnl).max())
    assert expected_shortfall(pnl, alpha, method) >= value_at_risk(pnl, alpha, method) - tol  # type: ignore[call-overload]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.floats(0.01, 100.0),
    sign=st.sampled_from([1.0, -1.0]),
    alpha=st.sampled_from([0.95, 0.99]),
)
def test_scaling_positions_scales_var_and_es(seed: int, k: float, sign: float, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0, 0.01, size=(250, 4))
    e = rng.normal(0, 1e5, size=4)
    # Historical: positive homogeneity for k > 0. Zero-mean parametric: symmetric, so |k| for either sign.
    base_h = portfolio_var(e, returns, alpha)
    scaled_h = portfolio_var(k * e, returns, alpha)
    np.testing.assert_allclose(scaled_h.var, k * base_h.var, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(scaled_h.es, k * base_h.es, rtol=1e-9, atol=1e-6)
    base_p = portfolio_var(e, returns, alpha, "parametric", include_mean=False)
    scaled_p = portfolio_var(sign * k * e, returns, alpha, "parametric", include_mean=False)
    np.testing.assert_allclose(scaled_p.var, k * base_p.var, rtol=1e-9)
    np.testing.assert_allclose(scaled_p.es, k * base_p.es, rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), method=st.sampled_from(["historical", "parametric", "monte_carlo"]))
def test_offsetting_position_leaves_zero_market_risk(seed: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0, 0.02, size=(200, 3))
    base = rng.normal(0, 1e5, size=3)
    # long on one venue, short the same quantity of the same factor on another: the Book must net it away
    factor = int(rng.integers(3))
    qty, price = float(rng.uniform(0.1, 50.0)), float(rng.uniform(10.0, 70_000.0))
    hedge = Book.from_arrays(
        venue=["binance", "okx"], instrument=["X/USDT", "X/USDT:USDT"], asset=["X", "X"],
        factor=[factor, factor], quantity=[qty, -qty], price=[price, price],
    )  # fmt: skip
    net = hedge.net_exposures(3)
    assert hedge.gross_notional == 2 * qty * price > 0.0  # the legs are there, only their market risk cancels
    figures = portfolio_var(net, returns, (0.95, 0.99), method, n_scenarios=1000)  # type: ignore[arg-type]
    np.testing.assert_array_equal(figures.var, 0.0)
    np.testing.assert_array_equal(figures.es, 0.0)
    # and added to any book it changes nothing
    alone = portfolio_var(base, returns, (0.95, 0.99), method, n_scenarios=1000)  # type: ignore[arg-type]
    hedged = portfolio_var(base + net, returns, (0.95, 0.99), method, n_scenarios=1000)  # type: ignore[arg-type]
    np.testing.assert_array_equal(hedged.var, alone.var)
    np.testing.assert_array_equal(hedged.es, alone.es)
