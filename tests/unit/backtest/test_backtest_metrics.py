"""Metrics against independent definitions: plain numpy formulas and a published drawdown example."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.metrics import METRIC_NAMES, compute_metrics, sampled_equity

HOUR = 3_600_000_000_000


def trades(rows: list[tuple[str, float, float, float, str, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "kind": ["cross_exchange"] * len(rows),
            "ts": [i * HOUR for i in range(len(rows))],
            "theoretical_profit": [r[1] for r in rows],
            "realized_pnl": [r[2] for r in rows],
            "fees": [r[3] for r in rows],
            "funding": [0.0] * len(rows),
            "filled_fraction": [1.0] * len(rows),
            "leg_failed": [r[5] for r in rows],
            "status": [r[4] for r in rows],
            "reason": [""] * len(rows),
        },
        schema={
            "id": pl.String,
            "kind": pl.String,
            "ts": pl.Int64,
            "theoretical_profit": pl.Float64,
            "realized_pnl": pl.Float64,
            "fees": pl.Float64,
            "funding": pl.Float64,
            "filled_fraction": pl.Float64,
            "leg_failed": pl.Boolean,
            "status": pl.String,
            "reason": pl.String,
        },
    )


def fills(rows: list[tuple[str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"signal_id": [r[0] for r in rows], "ts": [r[1] for r in rows], "notional_usd": [r[2] for r in rows]},
        schema={"signal_id": pl.String, "ts": pl.Int64, "notional_usd": pl.Float64},
    )


def equity(ts: list[int], pnl: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"ts": ts, "pnl": pnl}, schema={"ts": pl.Int64, "pnl": pl.Float64}).with_columns(
        cum_pnl=pl.col("pnl").cum_sum()
    )


NO_TRANSFERS = pl.DataFrame(schema={"cost_usd": pl.Float64})


def test_investopedia_drawdown_example() -> None:
    # Investopedia, "Maximum Drawdown (MDD)": 500k -> 750k -> 400k -> 600k -> 350k -> 800k gives MDD -53.33%.
    values = [500_000.0, 750_000.0, 400_000.0, 600_000.0, 350_000.0, 800_000.0]
    pnl = list(np.diff(values))
    m = compute_metrics(
        trades=trades([]),
        fills=fills([]),
        transfers=NO_TRANSFERS,
        equity=equity([HOUR * (i + 1) for i in range(len(pnl))], pnl),
        initial_equity=500_000.0,
        start=0,
        end=HOUR * len(values),
    )
    assert m["max_drawdown"] == pytest.approx((750_000 - 350_000) / 750_000)
    assert m["max_drawdown_usd"] == pytest.approx(400_000.0)
    assert m["total_pnl"] == 0.0  # no trades: PnL comes from trades, the curve is only the equity path


@settings(max_examples=40, deadline=None)
@given(pnl=st.lists(st.floats(-500.0, 500.0, allow_nan=False), min_size=3, max_size=30))
def test_sharpe_volatility_and_drawdown_match_plain_numpy(pnl: list[float]) -> None:
    initial = 100_000.0
    ts = [HOUR * (i + 1) for i in range(len(pnl))]  # one event per hour, exactly on the sampling grid
    m = compute_metrics(
        trades=trades([]),
        fills=fills([]),
        transfers=NO_TRANSFERS,
        equity=equity(ts, pnl),
        initial_equity=initial,
        start=0,
        end=ts[-1],
        period_s=3600.0,
    )
    curve = initial + np.concatenate([[0.0], np.cumsum(pnl)])
    returns = curve[1:] / curve[:-1] - 1.0
    per_year = 365.0 * 24.0
    sd = returns.std(ddof=1)
    # Each return carries ~1e-16 of absolute rounding (curve ratio minus one), so the ratio's relative error is
    # ~1e-16 / sd: below sd ~ 1e-6 it exceeds the 1e-9 tolerance (pnl=[9, 9, 9, 9] gives sd ~ 1e-8).
    if sd > 1e-6:
        assert m["sharpe_ratio"] == pytest.approx(math.sqrt(per_year) * returns.mean() / sd, rel=1e-9, abs=1e-9)
        assert m["volatility"] == pytest.approx(sd * math.sqrt(per_year), rel=1e-9)
    running_peak = np.maximum.accumulate(curve)
    assert m["max_drawdown"] == pytest.approx(float(np.max((running_peak - curve) / running_peak)), abs=1e-12)
    assert m["max_drawdown_usd"] == pytest.approx(float(np.max(running_peak - curve)), abs=1e-9)


def test_trade_level_metrics_match_hand_computation() -> None:
    t = trades(
        [
            ("a", 10.0, 8.0, 1.0, "filled", False),
            ("b", 5.0, -2.0, 1.0, "partial", True),
            ("c", 5.0, -1.0, 0.5, "missed", True),
            ("d", 4.0, 0.0, 0.0, "rejected", False),
        ]
    )
    f = fills([("a", 2 * 10**9, 1_000.0), ("a", 3 * 10**9, 1_000.0), ("b", HOUR + 5 * 10**9, 500.0)])
    transfers = pl.DataFrame({"cost_usd": [0.5]})
    m = compute_metrics(
        trades=t,
        fills=f,
        transfers=transfers,
        equity=equity([1, 2, 3], [8.0, -2.0, -1.0]),
        initial_equity=10_000.0,
        start=0,
        end=4 * HOUR,
        opportunities=7,
        rejected=2,
    )
    assert m["total_pnl"] == pytest.approx(8.0 - 2.0 - 1.0 + 0.0 - 0.5)
    assert m["win_rate"] == pytest.approx(1 / 2)  # executed: a (won), b (lost)
    assert m["avg_trade_duration"] == pytest.approx((3.0 + 5.0) / 2)  # last fill minus signal time
    assert m["capture_ratio"] == pytest.approx(5.0 / 24.0)
    assert m["turnover"] == pytest.approx(2_500.0)
    assert m["turnover_ratio"] == pytest.approx(0.25)
    assert m["fees_paid"] == pytest.approx(2.5)
    assert m["leg_failure_rate"] == pytest.approx(2 / 3)  # a, b, c attempted; b and c failed a leg
    assert (m["trades"], m["signals"], m["rejected"], m["opportunities"]) == (2, 6, 2, 7)
    assert list(m) == list(METRIC_NAMES)


def test_sampled_equity_is_as_of() -> None:
    grid, values = sampled_equity(equity([10, 25], [1.0, 2.0]), 50.0, 0, 30, 10e-9)
    assert grid.tolist() == [0, 10, 20, 30]
    assert values.tolist() == [50.0, 51.0, 51.0, 53.0]


def test_undefined_ratios_are_none() -> None:
    m = compute_metrics(
        trades=trades([]),
        fills=fills([]),
        transfers=NO_TRANSFERS,
        equity=equity([], []),
        initial_equity=1_000.0,
        start=0,
        end=HOUR,
    )
    assert m["sharpe_ratio"] is None
    assert m["win_rate"] is None
    assert m["capture_ratio"] is None
    assert m["max_drawdown"] == 0.0
