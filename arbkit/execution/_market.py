"""As-of market view for fills: what a venue's book showed at the instant an order arrived.

Orders are matched against the venue's own state, so the lookup uses the venue clock ``ts_event``: the latest
quote with ``ts_event <= t`` on that (exchange, symbol).  Lookups are vectorized: rows are sorted once by
(key, time) and every query is a ``searchsorted`` inside its key's slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.schema import QuoteFlag

__all__ = ["MarketView", "Prevailing"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prevailing:
    """Top of book prevailing at each query time (NaN where the venue showed nothing usable)."""

    bid: F64
    bid_size: F64
    ask: F64
    ask_size: F64
    ts: I64  # the quote's own time; -1 where none

    @property
    def mid(self) -> F64:
        return np.asarray((self.bid + self.ask) / 2.0, dtype=np.float64)


@dataclass(frozen=True)
class MarketView:
    """Quotes of many instruments, indexed for as-of lookups by ``(exchange, symbol, time)``.

    Quotes flagged with any blocking integrity bit (stale, crossed, resyncing...) are treated as showing nothing:
    an order arriving on a broken book does not fill.

    Examples
    --------
    >>> import polars as pl
    >>> q = pl.DataFrame({"ts_event": [10, 20], "ts_recv": [11, 21], "exchange": ["okx", "okx"],
    ...                   "symbol": ["BTC/USDT", "BTC/USDT"], "bid": [99.0, 100.0], "bid_size": [1.0, 2.0],
    ...                   "ask": [101.0, 102.0], "ask_size": [1.0, 2.0], "flags": [0, 0]})
    >>> view = MarketView.from_quotes(q)
    >>> view.lookup(["okx", "okx", "okx"], ["BTC/USDT"] * 3, [5, 15, 25]).ask.tolist()
    [nan, 101.0, 102.0]
    """

    keys: dict[tuple[str, str], tuple[int, int]]
    ts: I64
    bid: F64
    bid_size: F64
    ask: F64
    ask_size: F64

    @classmethod
    def from_quotes(cls, quotes: pl.DataFrame, clock: str = "ts_event") -> MarketView:
        blocking = QuoteFlag.blocking()
        frame = quotes.select(
            "exchange",
            "symbol",
            pl.col(clock).alias("t"),
            *(
                pl.when((pl.col("flags").cast(pl.Int64) & blocking) == 0).then(pl.col(c)).otherwise(None).alias(c)
                for c in ("bid", "bid_size", "ask", "ask_size")
            ),
        ).sort(["exchange", "symbol", "t"], maintain_order=True)
        keys: dict[tuple[str, str], tuple[int, int]] = {}
        if frame.height:
            bounds = (
                frame.with_row_index("i")
                .group_by(["exchange", "symbol"], maintain_order=True)
                .agg(pl.col("i").min().alias("lo"), (pl.col("i").max() + 1).alias("hi"))
            )
            for ex, sym, lo, hi in bounds.iter_rows():
                keys[(ex, sym)] = (int(lo), int(hi))

        def col(name: str) -> F64:
            return frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)

        return cls(
            keys=keys,
            ts=frame.get_column("t").to_numpy().astype(np.int64),
            bid=col("bid"),
            bid_size=col("bid_size"),
            ask=col("ask"),
            ask_size=col("ask_size"),
        )

    def lookup(self, exchanges: list[str], symbols: list[str], times: npt.ArrayLike) -> Prevailing:
        """The latest quote with time <= each query time, per (exchange, symbol)."""
        t = np.asarray(times, dtype=np.int64)
        n = t.shape[0]
        idx = np.full(n, -1, dtype=np.int64)
        pairs = np.array([f"{e}\x00{s}" for e, s in zip(exchanges, symbols, strict=True)], dtype=object)
        for pair in np.unique(pairs) if n else []:
            ex, sym = str(pair).split("\x00", 1)
            span = self.keys.get((ex, sym))
            if span is None:
                continue
            lo, hi = span
            sel = np.flatnonzero(pairs == pair)
            pos = np.searchsorted(self.ts[lo:hi], t[sel], side="right") - 1
            idx[sel] = np.where(pos >= 0, pos + lo, -1)
        found = idx >= 0
        safe = np.where(found, idx, 0)

        def pick(arr: F64) -> F64:
            if arr.shape[0] == 0:
                return np.full(n, np.nan)
            return np.where(found, arr[safe], np.nan)

        ts = np.where(found, self.ts[safe], -1) if self.ts.shape[0] else np.full(n, -1, dtype=np.int64)
        return Prevailing(pick(self.bid), pick(self.bid_size), pick(self.ask), pick(self.ask_size), ts)
