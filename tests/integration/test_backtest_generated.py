"""Backtests of every pipeline on a generated market (quotes, option quotes, funding): they run end to end."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from arbkit.data.generate import MarketSpec, generate_to_store
from arbkit.execution import FillParams, LatencyModel
from backtest import BacktestConfig, run_backtest, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated") / "store"
    generate_to_store(root, MarketSpec(seed=3, days=15 / 1440, episodes_per_hour=120.0))
    return root


def test_cross_exchange_zero_latency_captures_the_detected_profit(store: Path) -> None:
    fill = FillParams(
        latency=LatencyModel(scale=0.0),
        match_clock="ts_recv",
        infinite_size=True,
        rebalance=False,
        check_balances=False,
    )
    result = run_backtest(store, "cross_exchange", config=BacktestConfig(fill=fill, limits=None))
    assert result.trades.height > 0
    gap = (result.trades["realized_pnl"] - result.trades["theoretical_profit"]).abs().max()
    assert isinstance(gap, float)
    assert gap < 1e-6


@pytest.mark.parametrize("pipeline", ["basis", "options_parity"])
def test_holding_pipelines_run_and_report(store: Path, tmp_path: Path, pipeline: str) -> None:
    result = run_backtest(store, pipeline, tmp_path / pipeline)
    assert result.failed_days.height == 0
    assert result.trades.height + result.rejections.height == result.opportunities.height
    held = result.fills.filter(pl.col("purpose") == "exit")
    executed = result.trades.filter(pl.col("status").is_in(["filled", "partial"]))
    assert held.height >= executed.height  # every executed holding trade is closed again
    assert write_report(tmp_path / pipeline, latency=False).is_file()
