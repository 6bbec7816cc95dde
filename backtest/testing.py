"""A tiny seeded market for backtest tests and examples: a few venues quoting spot pairs with dislocations.

This is deliberately simpler than :mod:`arbkit.data.generate` (no options, funding or labels): tests of the
backtest need a store in milliseconds with known structure, whereas the generator is for realistic markets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from arbkit import schema
from arbkit.data.store import Store

__all__ = ["sample_quotes", "write_sample_store"]

_LEVELS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}


def sample_quotes(
    day: dt.date,
    *,
    rows: int = 2_000,
    venues: Sequence[str] = ("binance", "okx", "bybit"),
    seed: int = 0,
    dislocation: float = 0.003,
    hours: float = 2.0,
) -> pl.DataFrame:
    """Quotes (exact QUOTES schema) over the first ``hours`` of ``day``: random walks with venue dislocations.

    Examples
    --------
    >>> q = sample_quotes(dt.date(2024, 1, 2), rows=10)
    >>> q.height, q["ts_recv"].is_sorted()
    (10, True)
    """
    rng = np.random.default_rng(seed)
    t0 = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    ts = t0 + np.sort(rng.integers(0, int(hours * 3600e9), rows)).astype(np.int64)
    symbols = np.array(list(_LEVELS), dtype=object)[rng.integers(0, len(_LEVELS), rows)]
    level = np.array([_LEVELS[s] for s in symbols])
    walk = np.cumsum(rng.standard_normal(rows)) * 2e-4 / np.sqrt(max(rows, 1) / 100)
    jump = np.where(rng.random(rows) < 0.25, rng.choice([-1.0, 1.0], rows) * dislocation, 0.0)
    mid = level * np.exp(walk) * (1.0 + jump)
    half = mid * rng.uniform(0.00002, 0.0001, rows)
    return pl.DataFrame(
        {
            "ts_event": ts - rng.integers(1, 5, rows) * 1_000_000,
            "ts_recv": ts,
            "exchange": np.array(venues, dtype=object)[rng.integers(0, len(venues), rows)].tolist(),
            "symbol": symbols.tolist(),
            "bid": mid - half,
            "bid_size": np.round(rng.exponential(0.5, rows) + 0.001, 4),
            "ask": mid + half,
            "ask_size": np.round(rng.exponential(0.5, rows) + 0.001, 4),
            "seq": np.arange(rows, dtype=np.int64),
            "flags": np.zeros(rows, dtype=np.uint16),
        },
        schema=schema.QUOTES.polars,
    )


def write_sample_store(
    root: str | Path,
    days: Sequence[dt.date] = (dt.date(2024, 1, 2), dt.date(2024, 1, 3)),
    *,
    rows: int = 2_000,
    seed: int = 0,
) -> Store:
    """Write :func:`sample_quotes` for each day into a store at ``root`` and return it."""
    store = Store(root)
    for i, day in enumerate(days):
        store.write("quotes", sample_quotes(day, rows=rows, seed=seed + i))
    return store
