"""Opportunity analytics: lifetimes and half-lives per kind and venue pair, latency sensitivity, edges.

* **Lifetime** of an opportunity: ``ts_end - ts_start`` in milliseconds (an episode that is still active at the
  end of the data is censored there).
* **Half-life**: the time by which half of a group's opportunities have closed, fitted as an exponential decay:
  the maximum-likelihood rate of exponential lifetimes is ``n / sum(lifetime)``, so the half-life is
  ``ln 2 * mean(lifetime)``.  The empirical median is reported beside it, so a non-exponential shape shows.
* **Latency sensitivity**: the run's accepted signals replayed through the fill model at several latency scales
  (detection and the risk screen are reused; only execution re-runs), giving PnL and capture per scale.
* **Edges**: realized vs theoretical profit per executed trade.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from arbkit.data.store import Store
from arbkit.instruments import InstrumentKind, Registry, default_registry
from backtest.runner import (
    BacktestConfig,
    BacktestError,
    BacktestResult,
    execute_signals,
    fill_params_from_dict,
    group_by_day,
)

__all__ = ["edges", "latency_sensitivity", "lifetimes", "venue_pnl"]


def _pair(frame: pl.DataFrame) -> pl.Expr:
    del frame
    return pl.concat_str(
        [pl.col("buy_exchange").fill_null("?"), pl.col("sell_exchange").fill_null("?")], separator="->"
    ).alias("venue_pair")


def lifetimes(opportunities: pl.DataFrame) -> pl.DataFrame:
    """Lifetime statistics (ms) per kind and venue pair: count, median, p90, mean and exponential half-life.

    Examples
    --------
    >>> opp = pl.DataFrame({"kind": ["x"] * 3, "buy_exchange": ["a"] * 3, "sell_exchange": ["b"] * 3,
    ...                     "ts_start": [0, 0, 0], "ts_end": [1_000_000, 2_000_000, 3_000_000]})
    >>> row = lifetimes(opp).row(0, named=True)
    >>> row["count"], row["median_ms"], round(row["half_life_ms"], 4)  # ln 2 * 2 ms
    (3, 2.0, 1.3863)
    """
    if opportunities.height == 0:
        return pl.DataFrame(
            schema={
                "kind": pl.String,
                "venue_pair": pl.String,
                "count": pl.UInt32,
                "median_ms": pl.Float64,
                "p90_ms": pl.Float64,
                "mean_ms": pl.Float64,
                "half_life_ms": pl.Float64,
            }
        )
    life = opportunities.with_columns(_pair(opportunities), ((pl.col("ts_end") - pl.col("ts_start")) / 1e6).alias("ms"))
    return (
        life.group_by("kind", "venue_pair")
        .agg(
            pl.len().alias("count"),
            pl.col("ms").median().alias("median_ms"),
            pl.col("ms").quantile(0.9, interpolation="linear").alias("p90_ms"),
            pl.col("ms").mean().alias("mean_ms"),
        )
        .with_columns(half_life_ms=pl.col("mean_ms") * math.log(2.0))
        .sort("kind", "venue_pair")
    )


def edges(result: BacktestResult) -> pl.DataFrame:
    """Executed trades with theoretical and realized profit and their difference (slippage + leg losses)."""
    return (
        result.trades.filter(pl.col("status").is_in(["filled", "partial"]))
        .select("id", "kind", "theoretical_profit", "realized_pnl")
        .with_columns(shortfall=pl.col("theoretical_profit") - pl.col("realized_pnl"))
    )


def venue_pnl(result: BacktestResult) -> pl.DataFrame:
    """Realized PnL per venue pair (the signal's buy and sell venues), from the trades joined to opportunities."""
    opp = result.opportunities
    if opp.height == 0 or result.trades.height == 0:
        return pl.DataFrame(schema={"venue_pair": pl.String, "trades": pl.UInt32, "realized_pnl": pl.Float64})
    pairs = opp.select("id", _pair(opp))
    return (
        result.trades.join(pairs, on="id", how="left")
        .group_by("venue_pair")
        .agg(pl.len().alias("trades"), pl.col("realized_pnl").sum())
        .sort("realized_pnl", descending=True)
    )


def _config_from_record(record: Mapping[str, Any]) -> BacktestConfig:
    """The fill parameters and fee table a stored run used (venue latencies are the registry's defaults)."""
    fill = fill_params_from_dict(record["fill"])
    registry: Registry = default_registry()
    for key, taker in record.get("registry", {}).get("taker_fees", {}).items():
        venue, kind = key.split(":", 1)
        maker, current = registry.fees.get((venue, InstrumentKind(kind)), (taker, taker))
        if current != taker:
            registry = registry.with_fees(venue, kind, maker=min(maker, taker), taker=taker)
    return BacktestConfig(fill=fill, limits=None, registry=registry)


def latency_sensitivity(result: BacktestResult, scales: Sequence[float] | None = None) -> pl.DataFrame:
    """Replay the run's accepted signals at each latency scale; returns scale, PnL, capture and trades.

    Needs the run's store (its path is part of the run record).
    """
    record = result.config
    if scales is None:
        scales = tuple(float(s) for s in record.get("latency_scales", (0.0, 0.5, 1.0, 2.0, 4.0)))
    root = Path(result.store)
    if not root.is_dir():
        raise BacktestError(f"latency sensitivity needs the run's store, and {root} is not a directory")
    base = _config_from_record(record)
    rejected = set(result.rejections.get_column("id").to_list())
    accepted = result.opportunities.filter(~pl.col("id").is_in(list(rejected)))
    by_day = group_by_day(accepted)
    initial = {(r["exchange"], r["asset"]): r["initial"] for r in result.positions.iter_rows(named=True)}
    rows = []
    for scale in scales:
        fill = dataclasses.replace(
            base.fill, latency=dataclasses.replace(base.fill.latency, scale=base.fill.latency.scale * float(scale))
        )
        clock = str(record.get("pipeline_params", {}).get("clock") or "ts_recv")
        acc, _ = execute_signals(Store(root), by_day, base, fill, initial, risk=False, clock=clock)
        trades = pl.concat(acc.trades, how="vertical") if acc.trades else result.trades.head(0)
        transfers = [t for t in acc.transfers if t.height]
        realized = float(trades["realized_pnl"].sum())
        theo = float(trades["theoretical_profit"].sum())
        cost = float(pl.concat(transfers)["cost_usd"].sum()) if transfers else 0.0
        executed = trades.filter(pl.col("status").is_in(["filled", "partial"])).height
        rows.append(
            {
                "latency_scale": float(scale),
                "total_pnl": realized - cost,
                "capture_ratio": realized / theo if theo > 0 else None,
                "trades": executed,
                "missed": trades.filter(pl.col("status") == "missed").height,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "latency_scale": pl.Float64,
            "total_pnl": pl.Float64,
            "capture_ratio": pl.Float64,
            "trades": pl.Int64,
            "missed": pl.Int64,
        },
        orient="row",
    )
