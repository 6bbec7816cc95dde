"""Hypothesis strategies and a parity helper for testing strategies, in the spirit of ``polars.testing``.

* :func:`quote_frames` draws realistic ``quotes`` frames: several venues and instruments, prices that wander
  around a per-instrument level (with occasional cross-venue dislocations so detectors have something to find),
  bursts of equal timestamps, flagged rows and, on request, invalid rows (NaN, zero or negative prices, crossed
  books, unknown instruments).
* :func:`cuts` draws micro-batch cut positions for :func:`arbkit.pipeline.split_batch`: sorted, possibly
  repeated (empty batches), possibly inside a run of equal timestamps.
* :func:`check_split_parity` runs :func:`arbkit.pipeline.assert_parity` on one frame and cut set.

Examples
--------
>>> from hypothesis import given, settings
>>> @settings(max_examples=5)
... @given(frame=quote_frames(max_rows=20))
... def test_sorted(frame):
...     assert frame.height <= 20
>>> test_sorted()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from hypothesis import strategies as st

from arbkit import schema
from arbkit.pipeline import Batch, P, S, Strategy, assert_parity
from arbkit.schema import QuoteFlag

__all__ = ["DEFAULT_SYMBOLS", "DEFAULT_VENUES", "check_split_parity", "cuts", "quote_frames"]

DEFAULT_VENUES: tuple[str, ...] = ("binance", "okx", "bybit")
DEFAULT_SYMBOLS: dict[str, float] = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "ETH/BTC": 0.05}

_MS = 1_000_000
_START = 1_700_000_000_000_000_000  # 2023-11-14, any positive ns instant works


@st.composite
def quote_frames(
    draw: st.DrawFn,
    *,
    venues: Sequence[str] = DEFAULT_VENUES,
    symbols: dict[str, float] | None = None,
    min_rows: int = 0,
    max_rows: int = 60,
    flag_probability: float = 0.05,
    invalid: bool = False,
    dislocation: float = 0.004,
    max_gap_ms: int = 400,
) -> pl.DataFrame:
    """Draw a ``quotes`` frame (exact :data:`arbkit.schema.QUOTES` schema) sorted by ``ts_recv``.

    Parameters
    ----------
    venues, symbols
        Venues, and instruments with their price level.
    min_rows, max_rows
        Frame height bounds.
    flag_probability
        Chance that a row carries a blocking flag (stale, unverified, ...).
    invalid
        Also draw rows that fail the row checks (NaN, zero or negative price, crossed book flagged CROSSED,
        unknown venue); such frames do not pass :func:`arbkit.schema.validate`, which is the point.
    dislocation
        Relative size of the price jumps on one venue that create cross-venue opportunities.
    max_gap_ms
        Largest gap between consecutive receive times; 0-gaps (bursts) are drawn often.
    """
    levels = symbols if symbols is not None else DEFAULT_SYMBOLS
    names = list(levels)
    n = draw(st.integers(min_rows, max_rows))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    burst = rng.random(n) < 0.35
    gaps = np.where(burst, 0, rng.integers(1, max(max_gap_ms, 1) + 1, n)) * _MS
    ts_recv = _START + np.cumsum(gaps).astype(np.int64)
    ts_event = ts_recv - rng.integers(1, 20, n).astype(np.int64) * _MS
    venue_idx = rng.integers(0, len(venues), n)
    symbol_idx = rng.integers(0, len(names), n)
    level = np.array([levels[s] for s in names])[symbol_idx]
    drift = 1.0 + 0.001 * rng.standard_normal(n)
    jump = np.where(rng.random(n) < 0.3, rng.choice([-1.0, 1.0], n) * dislocation, 0.0)
    mid = level * drift * (1.0 + jump)
    spread = mid * rng.uniform(0.00005, 0.0005, n)
    bid = mid - spread / 2
    ask = mid + spread / 2
    bid_size = np.round(rng.exponential(1.0, n), 4)
    ask_size = np.round(rng.exponential(1.0, n), 4)
    flags = np.zeros(n, dtype=np.uint16)
    blocking = [QuoteFlag.STALE, QuoteFlag.UNVERIFIED, QuoteFlag.RESYNCING, QuoteFlag.OUTAGE]
    flagged = rng.random(n) < flag_probability
    flags[flagged] = rng.choice(np.array([int(b) for b in blocking], dtype=np.uint16), int(flagged.sum()))
    exchange = np.array(venues, dtype=object)[venue_idx]
    if invalid and n:
        kind = rng.integers(0, 8, n)
        bad = rng.random(n) < 0.15
        bid = np.where(bad & (kind == 0), np.nan, bid)
        ask = np.where(bad & (kind == 1), 0.0, ask)
        bid = np.where(bad & (kind == 2), -bid, bid)
        crossed = bad & (kind == 3)
        bid, ask = np.where(crossed, ask * 1.001, bid), np.where(crossed, bid, ask)
        flags = np.where(crossed, flags | int(QuoteFlag.CROSSED), flags).astype(np.uint16)
        exchange = np.where(bad & (kind == 4), "nowhere", exchange)
        ask_size = np.where(bad & (kind == 5), -1.0, ask_size)
    frame = pl.DataFrame(
        {
            "ts_event": ts_event,
            "ts_recv": ts_recv,
            "exchange": pl.Series(exchange.tolist(), dtype=pl.String),
            "symbol": pl.Series(np.array(names, dtype=object)[symbol_idx].tolist(), dtype=pl.String),
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "seq": np.arange(n, dtype=np.int64),
            "flags": flags,
        },
        schema=schema.QUOTES.polars,
    )
    return frame


@st.composite
def cuts(draw: st.DrawFn, height: int, max_cuts: int = 6) -> list[int]:
    """Sorted cut positions in ``[0, height]`` for :func:`arbkit.pipeline.split_batch` (repeats allowed)."""
    values = draw(st.lists(st.integers(0, max(height, 0)), max_size=max_cuts))
    return sorted(values)


def check_split_parity(
    strategy: Strategy[P, S], quotes: pl.DataFrame, params: P, cut_positions: Sequence[int], **tables: Any
) -> None:
    """Assert batch-split parity of ``strategy`` on a quotes frame (plus optional other tables) and cuts.

    ``clock`` is taken from ``params.clock`` when the parameters have one.
    """
    batch = Batch(quotes=quotes, **tables)
    clock = str(getattr(params, "clock", "ts_recv"))
    assert_parity(strategy, batch, params, list(cut_positions), clock=clock)
