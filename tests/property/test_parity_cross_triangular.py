"""Batch-split parity and symmetry properties of the cross-exchange and triangular pipelines."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines
from arbkit.pipeline import Batch
from arbkit.schema import BOOK, QuoteFlag
from arbkit.testing import check_split_parity, cuts, quote_frames

CROSS = pipelines.get("cross_exchange")


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=60, invalid=True), data=st.data(), clock=st.sampled_from(["ts_recv", "ts_event"]))
def test_cross_exchange_split_parity(frame: pl.DataFrame, data: st.DataObject, clock: str) -> None:
    params = CROSS.params_type(max_notional=100_000.0, clock=clock)
    check_split_parity(CROSS, frame, params, data.draw(cuts(frame.height)))


@settings(max_examples=30, deadline=None)
@given(frame=quote_frames(max_rows=50))
def test_swapping_two_venues_swaps_buy_and_sell(frame: pl.DataFrame) -> None:
    # okx and bybit have the same spot fees, lots and max age, so renaming one into the other is a pure relabel.
    swap = {"okx": "bybit", "bybit": "okx"}
    renamed = frame.with_columns(pl.col("exchange").replace(swap))
    params = CROSS.params_type(max_notional=100_000.0)
    a = CROSS.run(Batch(quotes=frame), params)
    b = CROSS.run(Batch(quotes=renamed), params)
    relabelled = b.with_columns(
        pl.col("buy_exchange").replace(swap),
        pl.col("sell_exchange").replace(swap),
        pl.col("legs").list.eval(pl.element().struct.with_fields(pl.field("exchange").replace(swap))),
    )
    cols = [c for c in a.columns if c != "id"]
    assert (
        a.select(cols)
        .sort("ts_start", "buy_exchange", "sell_exchange", "symbol")
        .equals(relabelled.select(cols).sort("ts_start", "buy_exchange", "sell_exchange", "symbol"))
    )


@settings(max_examples=30, deadline=None)
@given(frame=quote_frames(max_rows=50, max_gap_ms=3000))
def test_stale_quotes_never_produce_an_opportunity(frame: pl.DataFrame) -> None:
    params = CROSS.params_type(max_notional=100_000.0)
    stale = frame.with_columns(pl.col("flags") | int(QuoteFlag.STALE))
    assert CROSS.run(Batch(quotes=stale), params).height == 0
    # With a max age of 0 only quotes of the row's own instant are usable: any opportunity must start at a row
    # where both legs were quoted at that very instant.
    tight = CROSS.params_type(max_notional=100_000.0, max_age_ms=0.0)
    out = CROSS.run(Batch(quotes=frame), tight)
    for row in out.iter_rows(named=True):
        same = frame.filter(pl.col("ts_recv") == row["ts_start"], pl.col("symbol") == row["symbol"])
        assert {row["buy_exchange"], row["sell_exchange"]} <= set(same["exchange"])


TRIANGULAR = pipelines.get("triangular")
TRI_SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "ETH/BTC": 0.05, "SOL/USDT": 150.0, "SOL/BTC": 0.0025}


@settings(max_examples=30, deadline=None)
@given(
    frame=quote_frames(max_rows=50, invalid=True, symbols=TRI_SYMBOLS, dislocation=0.01),
    data=st.data(),
    transfers=st.sampled_from([(), ("USDT", "BTC")]),
)
def test_triangular_split_parity(frame: pl.DataFrame, data: st.DataObject, transfers: tuple[str, ...]) -> None:
    params = TRIANGULAR.params_type(max_notional=1_000.0, transfers=transfers)
    check_split_parity(TRIANGULAR, frame, params, data.draw(cuts(frame.height)))


@settings(max_examples=20, deadline=None)
@given(frame=quote_frames(max_rows=40, symbols=TRI_SYMBOLS, dislocation=0.01))
def test_triangular_stale_quotes_never_produce_an_opportunity(frame: pl.DataFrame) -> None:
    stale = frame.with_columns(pl.col("flags") | int(QuoteFlag.STALE))
    assert TRIANGULAR.run(Batch(quotes=stale), TRIANGULAR.params_type()).height == 0


def _book_from(quotes: pl.DataFrame, levels: int = 3) -> pl.DataFrame:
    """A book snapshot (level 0 = the quote, deeper levels 0.05% apart, growing sizes) for every quote row."""
    valid = quotes.filter(
        pl.col("bid").is_finite() & pl.col("ask").is_finite() & (pl.col("bid") > 0) & (pl.col("ask") > 0)
    )
    parts = []
    for side, top, size, sign in (("bid", "bid", "bid_size", -1.0), ("ask", "ask", "ask_size", 1.0)):
        for level in range(levels):
            parts.append(
                valid.select(
                    "ts_event",
                    "ts_recv",
                    "exchange",
                    "symbol",
                    pl.lit(side).alias("side"),
                    pl.lit(level, dtype=pl.UInt16).alias("level"),
                    (pl.col(top) * (1 + sign * 0.0005 * level)).alias("price"),
                    (pl.col(size).fill_nan(0.0).clip(0.0) * (1 + level)).alias("size"),
                    pl.lit(None, dtype=pl.Int64).alias("seq"),
                    pl.col("flags"),
                )
            )
    return pl.concat(parts).cast(BOOK.polars)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=50, invalid=True), data=st.data())
def test_cross_exchange_split_parity_with_book_depth(frame: pl.DataFrame, data: st.DataObject) -> None:
    book = _book_from(frame)
    params = CROSS.params_type(max_notional=1e9)
    check_split_parity(CROSS, frame, params, data.draw(cuts(frame.height + book.height)), book=book)


@settings(max_examples=30, deadline=None)
@given(
    frame=quote_frames(max_rows=50, invalid=True, symbols=TRI_SYMBOLS, dislocation=0.01),
    data=st.data(),
    transfers=st.sampled_from([(), ("USDT", "BTC")]),
)
def test_triangular_split_parity_with_book_depth(
    frame: pl.DataFrame, data: st.DataObject, transfers: tuple[str, ...]
) -> None:
    book = _book_from(frame)
    params = TRIANGULAR.params_type(max_notional=1e6, transfers=transfers)
    check_split_parity(TRIANGULAR, frame, params, data.draw(cuts(frame.height + book.height)), book=book)
