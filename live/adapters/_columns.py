"""One batch of top-of-book rows of one venue as NumPy columns (what the compiled parsers fill).

:class:`QuoteColumns` is the columnar twin of a list of :data:`~live.adapters.QuoteRow` tuples: the same values,
no Python object per row.  :meth:`QuoteColumns.frame` hands it to Polars in :data:`arbkit.schema.QUOTES`'s exact
schema; :meth:`QuoteColumns.row` and :meth:`QuoteColumns.last_rows` give tuples back where a caller needs a few.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from arbkit import schema
from live.adapters._base import QuoteRow, polars_schema

__all__ = ["QuoteColumns"]


class QuoteColumns:
    """Top-of-book rows of one venue received in one socket read.

    Every row shares ``exchange`` and ``ts_recv``; ``symbol_code`` indexes ``symbols`` (unified symbols, one
    entry per venue spelling, so two codes may name one symbol).  ``seq_valid`` is ``None`` when every row has
    a sequence number, else False where the venue sent none (``seq`` is null there).  Both sides are always
    present (the parsers decline one-sided books), so no price column has nulls.

    ``level_texts`` is set by :meth:`~live.adapters.Adapter.parse_book_columns` only: the buffer and, per row,
    the byte spans of the bid price, bid size, ask price and ask size as the venue wrote them (the book keeper
    keeps those texts).

    Examples
    --------
    >>> import numpy as np
    >>> cols = QuoteColumns("okx", 7, np.array([5, 6]), np.array([0, 0], dtype=np.int32), ["BTC/USDT"],
    ...                     np.array([100.0, 101.0]), np.array([1.0, 2.0]), np.array([100.5, 100.5]),
    ...                     np.array([3.0, 4.0]), np.array([11, 0]), np.array([True, False]),
    ...                     np.array([0, 2], dtype=np.uint16))
    >>> len(cols), cols.row(1)
    (2, (6, 7, 'okx', 'BTC/USDT', 101.0, 2.0, 100.5, 4.0, None, 2))
    >>> cols.frame().select("symbol", "seq", "flags").rows()
    [('BTC/USDT', 11, 0), ('BTC/USDT', None, 2)]
    """

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "exchange",
        "flags",
        "level_texts",
        "seq",
        "seq_valid",
        "symbol_code",
        "symbols",
        "ts_event",
        "ts_recv",
    )

    def __init__(
        self,
        exchange: str,
        ts_recv: int,
        ts_event: npt.NDArray[np.int64],
        symbol_code: npt.NDArray[np.int32],
        symbols: list[str],
        bid: npt.NDArray[np.float64],
        bid_size: npt.NDArray[np.float64],
        ask: npt.NDArray[np.float64],
        ask_size: npt.NDArray[np.float64],
        seq: npt.NDArray[np.int64],
        seq_valid: npt.NDArray[np.bool_] | None,
        flags: npt.NDArray[np.uint16],
        level_texts: tuple[bytes, npt.NDArray[np.int64]] | None = None,
    ) -> None:
        self.exchange = exchange
        self.ts_recv = ts_recv
        self.ts_event = ts_event
        self.symbol_code = symbol_code
        self.symbols = symbols
        self.bid = bid
        self.bid_size = bid_size
        self.ask = ask
        self.ask_size = ask_size
        self.seq = seq
        self.seq_valid = None if seq_valid is None or bool(seq_valid.all()) else seq_valid
        self.flags = flags
        self.level_texts = level_texts

    def __len__(self) -> int:
        return int(self.ts_event.shape[0])

    def __repr__(self) -> str:
        return f"QuoteColumns({self.exchange!r}, rows={len(self)}, ts_recv={self.ts_recv})"

    def row(self, i: int) -> QuoteRow:
        """Row ``i`` as the tuple :meth:`~live.adapters.Adapter.parse_quote_batch` gives (Python scalars)."""
        valid = self.seq_valid is None or bool(self.seq_valid[i])
        return (
            int(self.ts_event[i]),
            self.ts_recv,
            self.exchange,
            self.symbols[int(self.symbol_code[i])],
            float(self.bid[i]),
            float(self.bid_size[i]),
            float(self.ask[i]),
            float(self.ask_size[i]),
            int(self.seq[i]) if valid else None,
            int(self.flags[i]),
        )

    def rows(self) -> list[QuoteRow]:
        """Every row as a tuple (tests and the per-message fallback; the hot path keeps the columns)."""
        return [self.row(i) for i in range(len(self))]

    def last_rows(self) -> dict[str, QuoteRow]:
        """The latest row of each unified symbol (what a connector's last-quote cache keeps)."""
        n = len(self)
        if n == 0:
            return {}
        codes = self.symbol_code
        reversed_first = np.unique(codes[::-1], return_index=True)[1]
        last = np.sort(n - 1 - reversed_first)  # in row order, so a later spelling of one symbol wins
        return {row[3]: row for row in map(self.row, last.tolist())}

    def frame(self) -> pl.DataFrame:
        """The rows as a frame in :data:`arbkit.schema.QUOTES`'s exact schema (column order and dtypes)."""
        n = len(self)
        names = pl.Series("symbol", self.symbols, dtype=pl.String)
        seq = (
            pl.Series("seq", self.seq, dtype=pl.Int64)
            if self.seq_valid is None
            else pl.Series("seq", pa.array(self.seq, type=pa.int64(), mask=~self.seq_valid))
        )
        columns = [
            pl.Series("ts_event", self.ts_event, dtype=pl.Int64),
            pl.Series("ts_recv", [self.ts_recv], dtype=pl.Int64).new_from_index(0, n),
            pl.Series("exchange", [self.exchange], dtype=pl.String).new_from_index(0, n),
            names.gather(self.symbol_code) if n else names.clear(),
            pl.Series("bid", self.bid, dtype=pl.Float64),
            pl.Series("bid_size", self.bid_size, dtype=pl.Float64),
            pl.Series("ask", self.ask, dtype=pl.Float64),
            pl.Series("ask_size", self.ask_size, dtype=pl.Float64),
            seq,
            pl.Series("flags", self.flags, dtype=pl.UInt16),
        ]
        frame = pl.DataFrame(columns)
        assert frame.schema == polars_schema(schema.QUOTES)
        return frame
