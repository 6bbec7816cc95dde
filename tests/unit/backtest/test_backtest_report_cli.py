"""Reports, run comparison and the CLI commands (on a typer app of their own, as main.py registers them)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from arbkit_cli._backtest import register
from backtest import BacktestConfig, BacktestError, compare_runs, lifetimes, load_run, run_backtest, write_report
from backtest.metrics import METRIC_NAMES
from backtest.testing import write_sample_store


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("report")
    store = base / "store"
    write_sample_store(store, (dt.date(2024, 1, 2),), rows=1_200, seed=9)
    run_backtest(store, "cross_exchange", base / "a", config=BacktestConfig(limits=None))
    run_backtest(
        store, "cross_exchange", base / "b", config=BacktestConfig(limits=None, initial_balances={"USDT": 5e3})
    )
    return store, base / "a", base / "b"


def test_report_is_self_contained_html_with_inline_plots(runs: tuple[Path, Path, Path]) -> None:
    _store, run_a, _run_b = runs
    path = write_report(run_a)
    text = path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 6
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "http://" not in text
    assert "https://" not in text
    payload = json.loads((run_a / "report.json").read_text())
    assert set(METRIC_NAMES) <= set(payload["metrics"])
    scales = [row["latency_scale"] for row in payload["latency_sensitivity"]]
    assert scales == [0.0, 0.5, 1.0, 2.0, 4.0]


def test_compare_lists_metric_differences(runs: tuple[Path, Path, Path]) -> None:
    _store, run_a, run_b = runs
    frame = compare_runs(run_a, run_b)
    a, b = load_run(run_a).metrics, load_run(run_b).metrics
    row = frame.filter(pl.col("metric") == "total_pnl").row(0, named=True)
    assert row["difference"] == pytest.approx(b["total_pnl"] - a["total_pnl"])
    assert row["relative"] == pytest.approx((b["total_pnl"] - a["total_pnl"]) / abs(a["total_pnl"]))


def test_lifetimes_half_life_is_ln2_times_mean() -> None:
    opp = pl.DataFrame(
        {
            "kind": ["x"] * 4,
            "buy_exchange": ["a", "a", "a", "c"],
            "sell_exchange": ["b", "b", "b", "d"],
            "ts_start": [0, 0, 0, 0],
            "ts_end": [1_000_000, 3_000_000, 8_000_000, 5_000_000],
        }
    )
    rows = lifetimes(opp).to_dicts()
    assert [r["venue_pair"] for r in rows] == ["a->b", "c->d"]
    assert rows[0]["median_ms"] == 3.0
    assert rows[0]["half_life_ms"] == pytest.approx(0.6931471805599453 * 4.0)


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="is not a run directory"):
        write_report(tmp_path)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_backtest_json_prints_the_seed_metrics(
    runs: tuple[Path, Path, Path], tmp_path: Path, app: typer.Typer
) -> None:
    store, _a, _b = runs
    result = CliRunner().invoke(
        app, ["backtest", "--store", str(store), "--pipeline", "cross_exchange", "--out", str(tmp_path / "r"), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for name in ("total_pnl", "sharpe_ratio", "volatility", "max_drawdown", "win_rate", "avg_trade_duration"):
        assert name in payload
    assert payload["run_dir"] == str(tmp_path / "r")


def test_cli_sweep_report_and_compare(runs: tuple[Path, Path, Path], tmp_path: Path, app: typer.Typer) -> None:
    store, run_a, run_b = runs
    grid = tmp_path / "grid.toml"
    grid.write_text("min_profit = [0.0, 1.0]\nlatency_scale = [1.0]\n")
    runner = CliRunner()
    sweep = runner.invoke(
        app,
        [
            "sweep",
            "--store",
            str(store),
            "--pipeline",
            "cross_exchange",
            "--grid",
            str(grid),
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert sweep.exit_code == 0, sweep.output
    assert "sweep cross_exchange: 2 points" in sweep.stdout
    report = runner.invoke(app, ["report", str(run_b), "--no-latency"])
    assert report.exit_code == 0, report.output
    assert (run_b / "report.html").is_file()
    compare = runner.invoke(app, ["compare", str(run_a), str(run_b), "--json"])
    assert compare.exit_code == 0, compare.output
    assert [row["metric"] for row in json.loads(compare.stdout)][:2] == ["total_pnl", "sharpe_ratio"]


def test_cli_errors_are_one_clear_line(runs: tuple[Path, Path, Path], tmp_path: Path, app: typer.Typer) -> None:
    store, _a, _b = runs
    runner = CliRunner()
    bad = runner.invoke(app, ["backtest", "--store", str(store), "--pipeline", "nope", "--out", str(tmp_path / "x")])
    assert isinstance(bad.exception, BacktestError)
    assert "unknown pipeline 'nope'" in str(bad.exception)
    missing = runner.invoke(
        app, ["backtest", "--store", str(tmp_path / "no"), "--pipeline", "cross_exchange", "--out", "x"]
    )
    assert "--store" in str(missing.exception)
    when = runner.invoke(
        app, ["backtest", "--store", str(store), "--pipeline", "cross_exchange", "--out", "x", "--start", "yesterday"]
    )
    assert "--start" in str(when.exception)
