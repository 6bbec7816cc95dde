"""Sweeps: the vmapped screening kernel against numpy, grid files, and agreement with plain backtests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arbkit.execution import FillParams, LatencyModel
from backtest import BacktestConfig, BacktestError, SweepGrid, load_grid, run_backtest, run_sweep, screen
from backtest.testing import write_sample_store

ZERO = FillParams(
    latency=LatencyModel(scale=0.0), match_clock="ts_recv", infinite_size=True, rebalance=False, check_balances=False
)


# money in cents: XLA flushes subnormal floats to zero, and no amount of money is subnormal
CENTS = st.integers(-10_000, 10_000).map(lambda c: c / 100)


@settings(max_examples=30, deadline=None)
@given(
    gross=arrays(np.float64, st.integers(0, 40), elements=CENTS),
    data=st.data(),
)
def test_screen_matches_numpy(gross: np.ndarray, data: st.DataObject) -> None:  # type: ignore[type-arg]
    n = gross.shape[0]
    fees = data.draw(arrays(np.float64, n, elements=CENTS.map(abs)))
    notional = data.draw(arrays(np.float64, n, elements=st.floats(1, 1e5)))
    points = np.array(
        [[p, m, f, 1.0] for p in (-1.0, 0.0, 2.0) for m in (100.0, 1e9) for f in (0.5, 1.0, 2.0)], dtype=np.float64
    )
    keep, k, profit = screen(gross, fees, notional, points)
    for g, (min_profit, max_notional, fee_scale, _lat) in enumerate(points):
        k_ref = np.minimum(1.0, max_notional / notional)
        profit_ref = k_ref * (gross - fee_scale * fees)
        np.testing.assert_allclose(k[g], k_ref, rtol=1e-12)
        np.testing.assert_allclose(profit[g], profit_ref, rtol=1e-12, atol=1e-12)
        assert keep[g].tolist() == (profit_ref >= min_profit).tolist()


def test_grid_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text(json.dumps({"min_profit": [0, 1], "fee_scale": [1.0, 0.5, 2.0]}))
    (tmp_path / "g.toml").write_text("[grid]\nmin_profit = [0, 1]\nfee_scale = [1.0, 0.5, 2.0]\n")
    a, b = load_grid(tmp_path / "g.json"), load_grid(tmp_path / "g.toml")
    assert len(a) == 6
    np.testing.assert_array_equal(a.points, b.points)
    assert a.frame().columns == ["min_profit", "max_notional", "fee_scale", "latency_scale"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_profits": [1]}, r"unknown parameter\(s\) \['min_profits'\]"),
        ({"fee_scale": []}, "fee_scale has no values"),
        ({"max_notional": [0]}, "max_notional values must be positive"),
        ({"latency_scale": ["fast"]}, "latency_scale values must be numbers"),
    ],
)
def test_bad_grids_name_the_problem(values: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BacktestError, match=message):
        SweepGrid.product(values)


def test_unreadable_grid_file(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text("{nope")
    with pytest.raises(BacktestError, match="not valid JSON"):
        load_grid(tmp_path / "g.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "store"
    write_sample_store(root, (dt.date(2024, 1, 2),), rows=1_500, seed=5)
    return root


def test_neutral_point_equals_the_backtest_and_thresholds_filter(store: Path, tmp_path: Path) -> None:
    config = BacktestConfig(fill=ZERO, limits=None)
    result = run_sweep(store, "cross_exchange", {"min_profit": [-1e12, 1.0, 1e12]}, tmp_path / "sw", config=config)
    single = run_backtest(store, "cross_exchange", config=config)
    rows = result.points.sort("point").to_dicts()
    # a sweep day starts from the initial balances, as a one-day backtest does: the neutral point is that backtest
    assert rows[0]["total_pnl"] == pytest.approx(single.metrics["total_pnl"], rel=1e-12)
    assert rows[0]["signals"] == single.trades.height
    theo = single.trades["theoretical_profit"].to_numpy()
    assert rows[1]["signals"] == int((theo >= 1.0).sum())
    assert rows[1]["theoretical_profit"] == pytest.approx(float(theo[theo >= 1.0].sum()), rel=1e-9)
    assert rows[2]["signals"] == 0
    assert (tmp_path / "sw" / "sweep.parquet").is_file()
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["backend"] == "in-process"


def test_higher_fee_tiers_and_smaller_notional_earn_less(store: Path) -> None:
    config = BacktestConfig(fill=ZERO, limits=None)
    result = run_sweep(
        store, "cross_exchange", {"fee_scale": [0.5, 1.0, 2.0], "max_notional": [1e3, 1e12]}, config=config
    )
    pnl = {(r["fee_scale"], r["max_notional"]): r["theoretical_profit"] for r in result.points.to_dicts()}
    assert pnl[(0.5, 1e12)] > pnl[(1.0, 1e12)] > pnl[(2.0, 1e12)]
    assert pnl[(1.0, 1e3)] < pnl[(1.0, 1e12)]
