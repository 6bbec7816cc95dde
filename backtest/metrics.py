"""Backtest metrics: the seed's analytics fields plus arbitrage-specific ones.

Conventions (stated once, used by the report and ``arbkit compare``):

* ``total_pnl``: realized PnL of every trade (fees, unwinds, exits, funding included) minus transfer costs, USD.
* ``equity``: initial account value (USD, at the first marks) plus cumulative PnL, sampled on a regular grid of
  ``period_s`` seconds (as-of: the value after the last event at or before each grid point).
* ``sharpe_ratio`` / ``volatility``: of the simple returns of that sampled equity, annualised with
  ``sqrt(365 * 86400 / period_s)`` (crypto trades every day); ``None`` when undefined (fewer than two returns,
  zero variance).  Sharpe is :func:`arbkit.risk.sharpe_ratio` with a zero risk-free rate.
* ``max_drawdown``: :func:`arbkit.risk.max_drawdown` (relative to the running peak) of the event-level equity
  curve (initial value, then the value after every event); ``max_drawdown_usd`` is the same decline in money.
* ``win_rate``: share of executed trades (status filled or partial) with positive realized PnL.
* ``avg_trade_duration``: mean seconds from a signal to its last fill (entry, unwind or exit).
* ``capture_ratio``: realized PnL of executed signals / theoretical profit of all signals sent to the fill model.
* ``turnover``: traded notional in USD; ``turnover_ratio`` divides it by the initial equity.
* ``fees_paid``: taker fees in USD; ``transfer_costs``: withdrawal fees of rebalancing transfers in USD.
* ``leg_failure_rate``: share of attempted signals (not rejected) where the legs filled by different fractions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from arbkit.risk import RiskInputError, max_drawdown, sharpe_ratio

__all__ = ["METRIC_NAMES", "compute_metrics", "sampled_equity"]

#: Metric fields, in the order reports and ``--json`` print them.
METRIC_NAMES: tuple[str, ...] = (
    "total_pnl",
    "sharpe_ratio",
    "volatility",
    "max_drawdown",
    "max_drawdown_usd",
    "win_rate",
    "avg_trade_duration",
    "capture_ratio",
    "theoretical_profit",
    "turnover",
    "turnover_ratio",
    "fees_paid",
    "transfer_costs",
    "funding",
    "leg_failure_rate",
    "opportunities",
    "signals",
    "trades",
    "rejected",
    "initial_equity",
    "final_equity",
)

_EXECUTED = ("filled", "partial")


def sampled_equity(
    equity: pl.DataFrame, initial_equity: float, start: int, end: int, period_s: float
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Equity on a regular grid ``start, start + period, ...`` up to and including ``end`` (as-of).

    Examples
    --------
    >>> import polars as pl
    >>> eq = pl.DataFrame({"ts": [5, 15], "pnl": [1.0, 2.0], "cum_pnl": [1.0, 3.0]})
    >>> sampled_equity(eq, 100.0, 0, 20, 1e-8)[1].tolist()
    [100.0, 101.0, 103.0]
    """
    step = max(round(period_s * 1e9), 1)
    grid = np.arange(start, end + 1, step, dtype=np.int64)
    if grid.size == 0 or grid[-1] < end:
        grid = np.append(grid, np.int64(end))
    ts = equity.get_column("ts").to_numpy().astype(np.int64)
    cum = equity.get_column("cum_pnl").to_numpy().astype(np.float64)
    idx = np.searchsorted(ts, grid, side="right") - 1
    values = initial_equity + np.where(idx >= 0, cum[np.clip(idx, 0, None)] if cum.size else 0.0, 0.0)
    return grid, np.asarray(values, dtype=np.float64)


def _maybe(value: float) -> float | None:
    return value if math.isfinite(value) else None


def compute_metrics(
    *,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    transfers: pl.DataFrame,
    equity: pl.DataFrame,
    initial_equity: float,
    start: int,
    end: int,
    period_s: float = 3600.0,
    opportunities: int = 0,
    rejected: int = 0,
) -> dict[str, Any]:
    """All metrics of one run as a JSON-ready dict (see the module docstring for each definition).

    ``fills`` needs a ``notional_usd`` column and ``equity`` the fill model's ``ts``/``pnl``/``cum_pnl``.
    """
    realized = float(trades.get_column("realized_pnl").sum()) if trades.height else 0.0
    transfer_costs = float(transfers.get_column("cost_usd").sum()) if transfers.height else 0.0
    total = realized - transfer_costs
    executed = trades.filter(pl.col("status").is_in(_EXECUTED))
    attempted = trades.filter(pl.col("status") != "rejected")
    theoretical = float(trades.get_column("theoretical_profit").fill_nan(None).sum()) if trades.height else 0.0
    _grid, values = sampled_equity(equity, initial_equity, start, end, period_s)
    returns = np.diff(values) / values[:-1] if values.size > 1 and np.all(values[:-1] > 0) else np.zeros(0)
    per_year = 365.0 * 86_400.0 / period_s
    try:
        sharpe: float | None = sharpe_ratio(returns, per_year)
    except RiskInputError:
        sharpe = None
    vol = float(np.std(returns, ddof=1) * math.sqrt(per_year)) if returns.size >= 2 else math.nan
    cum = np.concatenate([[0.0], equity.get_column("cum_pnl").to_numpy()])
    try:
        mdd: float | None = max_drawdown(initial_equity + cum)
    except RiskInputError:
        mdd = None
    durations = (
        fills.group_by("signal_id")
        .agg(pl.col("ts").max().alias("done"))
        .join(executed.select(pl.col("id").cast(pl.String).alias("signal_id"), "ts"), on="signal_id", how="inner")
        .select(((pl.col("done") - pl.col("ts")) / 1e9).alias("seconds"))
        .get_column("seconds")
    )
    turnover = float(fills.get_column("notional_usd").sum()) if fills.height else 0.0
    metrics: dict[str, Any] = {
        "total_pnl": total,
        "sharpe_ratio": sharpe,
        "volatility": _maybe(vol),
        "max_drawdown": mdd,
        "max_drawdown_usd": float(np.max(np.maximum.accumulate(cum) - cum)),
        "win_rate": float((executed.get_column("realized_pnl") > 0).mean()) if executed.height else None,  # type: ignore[arg-type]
        "avg_trade_duration": float(durations.mean()) if durations.len() else None,  # type: ignore[arg-type]
        "capture_ratio": realized / theoretical if theoretical > 0 else None,
        "theoretical_profit": theoretical,
        "turnover": turnover,
        "turnover_ratio": turnover / initial_equity if initial_equity > 0 else None,
        "fees_paid": float(trades.get_column("fees").sum()) if trades.height else 0.0,
        "transfer_costs": transfer_costs,
        "funding": float(trades.get_column("funding").sum()) if trades.height else 0.0,
        "leg_failure_rate": float(attempted.get_column("leg_failed").mean()) if attempted.height else None,  # type: ignore[arg-type]
        "opportunities": opportunities,
        "signals": trades.height + rejected,
        "trades": executed.height,
        "rejected": rejected,
        "initial_equity": initial_equity,
        "final_equity": initial_equity + total,
    }
    return {name: metrics[name] for name in METRIC_NAMES}
