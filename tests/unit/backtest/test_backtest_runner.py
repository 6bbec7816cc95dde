"""The runner on a small seeded store: identities, accounting, monotonicity, risk rejections and bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines
from arbkit.execution import FillParams, LatencyModel
from arbkit.instruments import default_registry
from arbkit.risk import RiskLimits
from backtest import BacktestConfig, BacktestError, load_run, run_backtest
from backtest.testing import write_sample_store

DAYS = (dt.date(2024, 1, 2), dt.date(2024, 1, 3))
ZERO = FillParams(
    latency=LatencyModel(scale=0.0), match_clock="ts_recv", infinite_size=True, rebalance=False, check_balances=False
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bt") / "store"
    write_sample_store(root, DAYS, rows=1_500, seed=3)
    return root


def day_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_zero_latency_infinite_size_captures_exactly_the_theoretical_profit(store: Path) -> None:
    result = run_backtest(store, "cross_exchange", config=BacktestConfig(fill=ZERO, limits=None))
    trades = result.trades
    assert trades.height == result.opportunities.height > 10
    assert trades["status"].unique().to_list() == ["filled"]
    diff = (trades["realized_pnl"] - trades["theoretical_profit"]).abs().max()
    assert diff is not None
    assert float(diff) < 1e-9
    assert result.metrics["capture_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert result.metrics["total_pnl"] == pytest.approx(float(trades["theoretical_profit"].sum()), rel=1e-12)


def test_day_by_day_detection_matches_the_pipelines_detect_store(store: Path) -> None:
    result = run_backtest(store, "cross_exchange", config=BacktestConfig(fill=ZERO, limits=None))
    expected = pipelines.detect_store(store, "cross_exchange")
    assert result.opportunities.equals(expected)


def apply_fills(fills: pl.DataFrame, transfers: pl.DataFrame, initial: dict[tuple[str, str], float]) -> dict:  # type: ignore[type-arg]
    """Independent ledger: what every fill and transfer should have done to the balances (spot only here)."""
    registry = default_registry()
    out: dict[tuple[str, str], float] = defaultdict(float, initial)
    for f in fills.iter_rows(named=True):
        inst = registry.get(f["exchange"], f["symbol"])
        sign = 1.0 if f["side"] == "buy" else -1.0
        out[(f["exchange"], inst.quote)] -= sign * f["quantity"] * f["price"] + f["fee"]
        out[(f["exchange"], inst.base)] += sign * f["quantity"]
    for t in transfers.iter_rows(named=True):
        out[(t["from_exchange"], t["asset"])] -= t["amount"]
        out[(t["to_exchange"], t["asset"])] += t["amount"] - t["fee"]
    return dict(out)


@settings(max_examples=4, deadline=None)
@given(
    usdt=st.sampled_from([3_000.0, 20_000.0, 1e6]),
    btc=st.sampled_from([0.05, 1.0]),
    latency=st.sampled_from([0.0, 1.0, 300.0]),
)
def test_balances_reconcile_with_fills_fees_and_transfers(store: Path, usdt: float, btc: float, latency: float) -> None:
    config = BacktestConfig(
        fill=FillParams(latency=LatencyModel(scale=latency)),
        limits=None,
        initial_balances={"USDT": usdt, "BTC": btc, "ETH": 20 * btc},
    )
    result = run_backtest(store, "cross_exchange", config=config)
    positions = result.positions
    initial = {(r["exchange"], r["asset"]): r["initial"] for r in positions.iter_rows(named=True)}
    final = {(r["exchange"], r["asset"]): r["final"] for r in positions.iter_rows(named=True)}
    expected = apply_fills(result.fills, result.transfers, initial)
    for key in set(expected) | set(final):
        assert final.get(key, 0.0) == pytest.approx(expected.get(key, 0.0), abs=1e-6), key
    # the equity curve is the running sum of the same events the trades and transfers report
    assert float(result.equity["pnl"].sum()) == pytest.approx(result.metrics["total_pnl"], abs=1e-6)
    assert result.metrics["final_equity"] == pytest.approx(
        result.metrics["initial_equity"] + result.metrics["total_pnl"]
    )


def test_more_latency_or_higher_fees_never_earn_more(store: Path) -> None:
    def pnl(scale: float, fee_factor: float) -> float:
        registry = default_registry()
        for (venue, kind), (maker, taker) in registry.fees.items():
            registry = registry.with_fees(venue, kind, maker=maker * fee_factor, taker=taker * fee_factor)
        config = BacktestConfig(fill=FillParams(latency=LatencyModel(scale=scale)), limits=None, registry=registry)
        return float(run_backtest(store, "cross_exchange", config=config).metrics["total_pnl"])

    base = pnl(1.0, 1.0)
    assert pnl(1000.0, 1.0) < base
    assert pnl(1.0, 1.5) < base


def test_risk_checks_reject_with_codes_and_reasons(store: Path) -> None:
    limits = RiskLimits(
        max_var=1e12,
        max_leverage=50.0,
        max_concentration=50.0,
        max_drawdown=0.5,
        stop_loss=1e6,
        default_max_instrument_notional=2_000.0,
    )
    result = run_backtest(store, "cross_exchange", config=BacktestConfig(limits=limits))
    rejected = result.rejections
    assert rejected.height > 0
    assert set(rejected["code"].to_list()) == {4002}
    assert set(rejected["reason"].to_list()) == {"instrument_notional"}
    assert (rejected["value"] > rejected["limit"]).all()
    assert result.metrics["rejected_by_code"] == {"4002": rejected.height}
    assert set(result.trades["id"]).isdisjoint(set(rejected["id"]))
    assert result.trades.height + rejected.height == result.opportunities.height


def test_results_are_stored_and_read_back(store: Path, tmp_path: Path) -> None:
    result = run_backtest(store, "cross_exchange", tmp_path / "run", config=BacktestConfig(fill=ZERO, limits=None))
    back = load_run(tmp_path / "run")
    for name in ("trades", "fills", "equity", "positions", "days", "opportunities"):
        assert getattr(back, name).equals(getattr(result, name)), name
    assert back.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["code_version"].startswith(("git:", "arbkit", "unknown"))
    assert record["config"]["fill"]["infinite_size"] is True
    assert (tmp_path / "run" / "trades.parquet").is_file()


def test_missing_days_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_sample_store(root, (dt.date(2024, 1, 2), dt.date(2024, 1, 4)), rows=300)
    result = run_backtest(root, "cross_exchange", start=day_ns(dt.date(2024, 1, 2)), end=day_ns(dt.date(2024, 1, 5)))
    missing = result.days.filter(pl.col("status") == "missing")
    assert missing["day"].to_list() == [dt.date(2024, 1, 3)]
    assert result.metrics["missing_days"] == 1


def test_a_failed_day_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_sample_store(root, DAYS, rows=300)
    broken = next(root.glob("**/date=2024-01-03/*.parquet"))
    broken.write_bytes(b"not parquet")
    result = run_backtest(root, "cross_exchange")
    failed = result.failed_days
    assert failed["day"].to_list() == [dt.date(2024, 1, 3)]
    assert failed["stage"].to_list() == ["detect"]
    assert result.days.filter(pl.col("day") == dt.date(2024, 1, 2), pl.col("stage") == "detect")["status"][0] == "ok"
    with pytest.raises(BacktestError, match="detection failed on 2024-01-03"):
        run_backtest(root, "cross_exchange", config=BacktestConfig(fail_fast=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pipeline": "nope"}, "unknown pipeline 'nope'"),
        ({"start": 10, "end": 10}, "empty time range"),
        ({"start": 0, "end": 1_000}, r"no \S+ data for pipeline 'cross_exchange'"),
        ({"config": BacktestConfig(pipeline_params={"min_proft": 1.0})}, r"unknown field\(s\) \['min_proft'\]"),
        # values the pipelines' parameter classes would take without a word and then detect nothing with
        ({"config": BacktestConfig(pipeline_params={"min_profit": "1"})}, "min_profit .* must be a finite number"),
        ({"config": BacktestConfig(pipeline_params={"min_profit": math.nan})}, "min_profit .* must be a finite number"),
        ({"config": BacktestConfig(pipeline_params={"max_notional": True})}, "max_notional .* must be a finite"),
        ({"config": BacktestConfig(pipeline_params={"clock": 1})}, "clock .* must be text"),
    ],
)
def test_bad_input_names_the_problem(store: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    args = {"pipeline": "cross_exchange", **kwargs}
    with pytest.raises(BacktestError, match=message):
        run_backtest(store, **args)


def test_a_day_failing_in_execution_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_sample_store(root, DAYS, rows=300)

    def break_day_two(stage: str, done: int, total: int) -> None:
        # after detection, the second day's quotes become unreadable: only its execution can fail
        if stage == "detect" and done == total:
            for part in root.glob("kind=quotes/**/date=2024-01-03/*.parquet"):
                part.write_bytes(b"not parquet")

    result = run_backtest(root, "cross_exchange", progress=break_day_two)
    detect = result.days.filter(pl.col("stage") == "detect")
    assert detect["status"].to_list() == ["ok", "ok"]
    failed = result.failed_days
    assert (failed["day"].to_list(), failed["stage"].to_list()) == ([dt.date(2024, 1, 3)], ["execute"])
    assert failed["error"][0]
    assert result.metrics["failed_days"] == 1
    # the first day still trades, on its own data: its next-day neighbour (read for late exits) is unreadable
    executed = result.days.filter(pl.col("stage") == "execute", pl.col("day") == dt.date(2024, 1, 2))
    assert executed["status"].to_list() == ["partial"]
    assert "neighbouring data unreadable" in executed["error"][0]

    write_sample_store(root, DAYS, rows=300)  # repaired, then broken again under fail_fast
    with pytest.raises(BacktestError, match="execution failed on 2024-01-03"):
        run_backtest(root, "cross_exchange", config=BacktestConfig(fail_fast=True), progress=break_day_two)


def test_bad_config_values_are_rejected() -> None:
    with pytest.raises(BacktestError, match="initial_balances"):
        BacktestConfig(initial_balances={"USDT": -1.0})
    with pytest.raises(BacktestError, match="metrics_period_s"):
        BacktestConfig(metrics_period_s=0.0)


def test_store_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="is not a directory"):
        run_backtest(tmp_path / "absent", "cross_exchange")


def test_config_from_settings_maps_risk_and_detection() -> None:
    from arbkit.config import load_settings

    settings = load_settings(
        None, env={"ARBKIT_DETECTION__MIN_PROFIT": "2.5", "ARBKIT_RISK_MANAGEMENT__MAX_LEVERAGE": "2"}
    )
    config = BacktestConfig.from_settings(settings)
    assert config.pipeline_params["min_profit"] == 2.5
    assert config.limits is not None
    assert config.limits.max_leverage == 2.0
    assert config.limits.default_max_instrument_notional == settings.risk_management.max_position_notional
    assert dataclasses.asdict(config.fill) == dataclasses.asdict(FillParams())


def test_a_run_without_opportunities_has_zero_pnl_and_a_valued_account(store: Path) -> None:
    config = BacktestConfig(pipeline_params={"min_profit": 1e12})
    result = run_backtest(store, "cross_exchange", config=config)
    assert result.opportunities.height == 0
    assert result.trades.height == 0
    assert result.metrics["total_pnl"] == 0.0
    # 3 venues x (100k USDT + 1 BTC + 10 ETH) at the sample market's ~60k / ~3k marks
    assert 3 * (100_000 + 50_000 + 25_000) < result.metrics["initial_equity"] < 3 * (100_000 + 70_000 + 35_000)
