"""``Books.apply_batch`` equals ``Books.apply`` update by update: rows, counters and every book's state.

The batch entry point takes a one-pass route for updates that replace their book unchecked (Bybit snapshots and
``u == 1`` deltas, ``replace`` partial books); random interleavings of those with deltas, gaps, duplicates,
zero sizes, crossed and lagging books over two symbols must not tell the two paths apart.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.adapters import BookUpdate, Level, Rows
from live.book import BookKeeper, Books

T0 = 1_800_000_000_000_000_000
MS = 1_000_000

_prices = st.sampled_from(["99.5", "100", "100.5", "101", "101.5", "102"])
_sizes = st.sampled_from(["0", "0.5", "1", "2.25"])
_levels = st.lists(st.tuples(_prices, _sizes), max_size=4).map(
    lambda items: tuple((float(p), float(q), p, q) for p, q in items)
)


@st.composite
def _update(draw: st.DrawFn) -> BookUpdate:
    rule = draw(st.sampled_from(["bybit", "bybit", "replace", "coinbase"]))
    exchange = {"bybit": "bybit", "replace": "binance", "coinbase": "coinbase"}[rule]
    bids: tuple[Level, ...] = draw(_levels)
    asks: tuple[Level, ...] = draw(_levels)
    ts_event = T0 + draw(st.integers(0, 50)) * MS
    lag = draw(st.sampled_from([0, 1, 10**10]))  # a lag beyond max_age flags the quote STALE
    return BookUpdate(
        exchange,
        draw(st.sampled_from(["BTC/USDT:USDT", "ETH/USDT:USDT"])),
        rule,
        draw(st.booleans()),
        bids,
        asks,
        ts_event,
        ts_event + lag,
        seq=draw(st.integers(1, 6)),
        depth=draw(st.sampled_from([None, 1, 50])),
    )


def _state(keeper: BookKeeper) -> tuple[object, ...]:
    return (
        keeper.bids,
        keeper.asks,
        keeper.best_bid,
        keeper.best_ask,
        keeper.synced,
        keeper.resyncing,
        keeper.needs_resync,
        keeper.last_seq,
        keeper.ts_event,
        keeper.ts_recv,
        keeper.quote(),
        keeper.quote(T0 + 10**12),
        keeper.book_rows(),
        keeper.counters,
    )


@settings(max_examples=120, deadline=None)
@given(batches=st.lists(st.lists(_update(), max_size=12), max_size=5), emit_levels=st.booleans())
def test_apply_batch_equals_apply_one_by_one(batches: list[list[BookUpdate]], emit_levels: bool) -> None:
    one, many = Books(depth=2, emit_levels=emit_levels), Books(depth=2, emit_levels=emit_levels)
    for updates in batches:
        expected = Rows()
        for update in updates:
            one.apply(update, expected)
        got = many.apply_batch(updates, Rows())
        assert got.quotes == expected.quotes
        assert got.book == expected.book
    assert one.keepers.keys() == many.keepers.keys()
    for key, keeper in one.keepers.items():
        assert _state(many.keepers[key]) == _state(keeper)


def test_replace_with_refuses_another_books_update() -> None:
    keeper = BookKeeper("bybit", "BTC/USDT:USDT")
    update = BookUpdate("bybit", "ETH/USDT:USDT", "bybit", True, (), (), T0, T0, seq=1)
    assert keeper.replaces(update)
    with pytest.raises(ValueError, match="sent to bybit:BTC/USDT:USDT"):
        keeper.replace_with(update, [], None)
