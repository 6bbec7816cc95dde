"""Trades and top-N book levels derived from a chunk's quotes (private to :mod:`arbkit.data.generate`).

Both are consistent with the quotes by construction: a trade prints at the as-of (``ts_event``) best bid or ask of
its venue-instrument, with a size no larger than the displayed one; book level 0 is exactly the quote and deeper
levels step away by about half the spread, on the tick and lot grids.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from arbkit.data._gen_market import LatentState, Universe, round_sizes, strictly_increasing_recv
from arbkit.schema import BOOK, TRADES


def trade_rows(
    u: Universe, quotes: pl.DataFrame, state: LatentState, t0: int, t1: int, rate: float, rng: np.random.Generator
) -> pl.DataFrame:
    """Trades at ``rate`` per second per venue-instrument (Poisson), priced at the as-of best bid/ask."""
    counts = rng.poisson(rate * (t1 - t0) / 1e9, size=len(u.vis))
    if counts.sum() == 0:
        return pl.DataFrame(schema=TRADES.polars)
    seg = np.repeat(np.arange(len(u.vis), dtype=np.int64), counts)
    t_ev = rng.integers(t0, t1, size=seg.size).astype(np.int64)
    key = np.lexsort((t_ev, seg))
    t_ev, seg = t_ev[key], seg[key]
    t_ev = t_ev + (np.arange(t_ev.size) - np.searchsorted(seg, seg, side="left"))  # distinct within a segment
    frame = pl.DataFrame({"vi": seg, "ts_event": t_ev})
    book = quotes.select(
        "ts_event", "exchange", "symbol", "bid", "bid_size", "ask", "ask_size", pl.col("ts_event").alias("_q")
    )
    names = pl.DataFrame(
        {
            "vi": np.arange(len(u.vis), dtype=np.int64),
            "exchange": [v.venue for v in u.vis],
            "symbol": [v.symbol for v in u.vis],
        }
    )
    frame = (
        frame.join(names, on="vi", how="left")
        .sort("ts_event")
        .join_asof(
            book.sort("ts_event"), on="ts_event", by=["exchange", "symbol"], strategy="backward", check_sortedness=False
        )
        .drop_nulls("bid")
        .sort("vi", "ts_event")
    )
    if frame.height == 0:
        return pl.DataFrame(schema=TRADES.polars)
    vi = frame["vi"].to_numpy()
    buy = rng.uniform(size=frame.height) < 0.5
    price = np.where(buy, frame["ask"].to_numpy(), frame["bid"].to_numpy())
    shown = np.where(buy, frame["ask_size"].to_numpy(), frame["bid_size"].to_numpy())
    lot = np.array([v.inst.lot_size for v in u.vis])[vi]
    size = np.minimum(round_sizes(shown * rng.uniform(0.05, 0.6, size=vi.size), lot), shown)
    ev = frame["ts_event"].to_numpy()
    lat = np.array([v.lat_ns for v in u.vis], dtype=np.int64)[vi]
    recv = strictly_increasing_recv(ev, vi, lat, state.trade_recv[vi], t0, rng)
    starts = np.searchsorted(vi, np.arange(len(u.vis)), side="left")
    number = state.trade_seq[vi] + np.arange(vi.size, dtype=np.int64) - starts[vi] + 1
    ends = np.append(starts[1:], vi.size)
    for i in range(len(u.vis)):
        if ends[i] > starts[i]:
            state.trade_recv[i] = recv[ends[i] - 1]
            state.trade_seq[i] = number[ends[i] - 1]
    return pl.DataFrame(
        {
            "ts_event": ev,
            "ts_recv": recv,
            "exchange": frame["exchange"],
            "symbol": frame["symbol"],
            "trade_id": pl.Series(number).cast(pl.String),
            "side": pl.Series(np.where(buy, "buy", "sell")).cast(pl.String),
            "price": price,
            "size": size,
            "flags": np.zeros(vi.size, dtype=np.uint16),
        }
    )


def book_rows(
    u: Universe, quotes: pl.DataFrame, keys: tuple[tuple[str, str], ...], levels: int, rng: np.random.Generator
) -> pl.DataFrame:
    """``levels`` price levels per side for every quote update of the chosen venue-instruments."""
    if not keys or levels <= 0:
        return pl.DataFrame(schema=BOOK.polars)
    wanted = pl.DataFrame({"exchange": [k[0] for k in keys], "symbol": [k[1] for k in keys]})
    rows = quotes.join(wanted, on=["exchange", "symbol"], how="semi")
    if rows.height == 0:
        return pl.DataFrame(schema=BOOK.polars)
    index = {(v.venue, v.symbol): v for v in u.vis}
    tick = np.array([index[(e, s)].inst.tick_size for e, s in zip(rows["exchange"], rows["symbol"], strict=True)])
    lot = np.array([index[(e, s)].inst.lot_size for e, s in zip(rows["exchange"], rows["symbol"], strict=True)])
    bid, ask = rows["bid"].to_numpy(), rows["ask"].to_numpy()
    step = tick * np.maximum(1.0, np.round(0.5 * (ask - bid) / tick))
    parts: list[pl.DataFrame] = []
    base = rows.select("ts_event", "ts_recv", "exchange", "symbol", "seq", "flags")
    decimals = np.clip(np.ceil(-np.log10(tick)) + 2, 0, 15)
    for side, top, top_size, sign in (
        ("bid", bid, rows["bid_size"].to_numpy(), -1.0),
        ("ask", ask, rows["ask_size"].to_numpy(), 1.0),
    ):
        for level in range(levels):
            price = np.round(top + sign * level * step, int(decimals.max()))
            size = (
                top_size
                if level == 0
                else round_sizes(top_size * rng.uniform(0.5, 2.0, size=top.size) * (1 + level), lot)
            )
            parts.append(
                base.with_columns(
                    pl.lit(side).alias("side"),
                    pl.lit(level, dtype=pl.UInt16).alias("level"),
                    pl.Series("price", price),
                    pl.Series("size", size),
                ).filter(pl.col("price") > 0)
            )
    return pl.concat(parts).select(BOOK.names)
