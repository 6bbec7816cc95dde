"""Backtests of named pipelines over the Parquet store: runner, metrics, results store, reports and sweeps.

The main entry points::

    result = run_backtest(store_root, "cross_exchange", out_dir)   # detection -> risk checks -> fills
    write_report(out_dir)                                           # RUN_DIR/report.html + report.json
    compare_runs(run_a, run_b)                                      # metric differences
    run_sweep(store_root, "cross_exchange", {"min_profit": [0, 1]}) # vmapped screening, days x points (Ray opt.)

See :mod:`backtest.runner` for the day-by-day design, :mod:`backtest.metrics` for metric definitions and
:mod:`backtest.results` for the run-directory layout.
"""

from __future__ import annotations

from backtest.analytics import edges, latency_sensitivity, lifetimes, venue_pnl
from backtest.metrics import METRIC_NAMES, compute_metrics, sampled_equity
from backtest.report import compare_runs, write_report
from backtest.results import load_run, load_table, save_run
from backtest.runner import BacktestConfig, BacktestError, BacktestResult, code_version, run_backtest
from backtest.sweep import GRID_KEYS, SweepGrid, SweepResult, load_grid, run_sweep, screen

__all__ = [
    "GRID_KEYS",
    "METRIC_NAMES",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "SweepGrid",
    "SweepResult",
    "code_version",
    "compare_runs",
    "compute_metrics",
    "edges",
    "latency_sensitivity",
    "lifetimes",
    "load_grid",
    "load_run",
    "load_table",
    "run_backtest",
    "run_sweep",
    "sampled_equity",
    "save_run",
    "screen",
    "venue_pnl",
    "write_report",
]
