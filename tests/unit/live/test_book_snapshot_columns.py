"""``Books.apply_snapshot_columns`` equals ``Books.apply_batch`` of the same snapshots, one update at a time.

The reference is the per-update path (:meth:`BookKeeper.replace_with` through ``apply_batch``): random reads over a
symbol table where two codes name one symbol, event times out of order and lagging past ``max_age``, crossed
rows, keepers that already hold books (later event times, other ``max_age``, lost sync) and reads that must be
declined (a keeper saw a later receive time) must give the same quotes bit for bit and the same keeper state.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from arbkit.schema import QuoteFlag
from live.adapters import BookUpdate, Rows
from live.adapters._columns import QuoteColumns
from live.book import BookKeeper, Books

T0 = 1_800_000_000_000_000_000
MS = 1_000_000
MAX_AGE = 20 * MS
BTC, ETH, SOL, XRP = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"
# symbol tables as an adapter hands them out: the same list object until it is rebuilt (a new list, other codes)
TABLES = [[BTC, ETH, BTC, SOL], [SOL, BTC, XRP, ETH, BTC], [ETH]]

Row = tuple[int, int, str, str, str, str, int]  # code, ts_event offset (ms), bid, bid size, ask, ask size, seq

_prices = st.sampled_from(["99.5", "100", "100.0", "1e2", "100.5", "101", "0.1"])
_sizes = st.sampled_from(["0.5", "1", "1.0", "2.25", "3e-8"])


def _rows(n_codes: int) -> st.SearchStrategy[list[Row]]:
    row = st.tuples(st.integers(0, n_codes - 1), st.integers(-40, 60), _prices, _sizes, _prices, _sizes,
                    st.integers(1, 10**12))  # fmt: skip
    return st.lists(row, max_size=12)


@st.composite
def _read(draw: st.DrawFn) -> tuple[int, int, list[Row]]:
    table = draw(st.integers(0, len(TABLES) - 1))
    return table, draw(st.integers(0, 60)), draw(_rows(len(TABLES[table])))


@st.composite
def _prior(draw: st.DrawFn) -> BookUpdate:
    """An update a keeper saw before the reads: a snapshot or a delta (dropped, or a gap once synced)."""
    ts_event = T0 + draw(st.integers(-40, 100)) * MS
    level = ((100.0, 1.0, "100", "1"),)
    symbol, is_snapshot = draw(st.sampled_from([BTC, ETH, SOL])), draw(st.booleans())
    ts_recv = ts_event + draw(st.sampled_from([0, MS, 10**10]))
    return BookUpdate(
        "bybit", symbol, "bybit", is_snapshot, level, level, ts_event, ts_recv, seq=draw(st.integers(2, 9))
    )


def _update(symbol: str, row: Row, ts_recv: int) -> BookUpdate:
    _, offset, bid, bid_size, ask, ask_size, seq = row
    bids = ((float(bid), float(bid_size), bid, bid_size),)
    asks = ((float(ask), float(ask_size), ask, ask_size),)
    return BookUpdate("bybit", symbol, "bybit", True, bids, asks, T0 + offset * MS, ts_recv, seq=seq, depth=1)


def _columns(names: list[str], rows: list[Row], ts_recv: int) -> QuoteColumns:
    """The rows as ``parse_book_columns`` gives them: level texts in one buffer, CROSSED where bid > ask."""
    buf = bytearray()
    spans = np.zeros((len(rows), 8), dtype=np.int64)
    for i, row in enumerate(rows):
        for j, text in enumerate(row[2:6]):
            spans[i, 2 * j] = len(buf)
            buf += text.encode()
            spans[i, 2 * j + 1] = len(buf)
    bid, bid_size, ask, ask_size = (np.array([float(r[j]) for r in rows], dtype=np.float64) for j in range(2, 6))
    return QuoteColumns(
        "bybit",
        ts_recv,
        np.array([T0 + r[1] * MS for r in rows], dtype=np.int64),
        np.array([r[0] for r in rows], dtype=np.int32),
        names,
        bid,
        bid_size,
        ask,
        ask_size,
        np.array([r[6] for r in rows], dtype=np.int64),
        None,
        np.where(bid > ask, np.uint16(QuoteFlag.CROSSED), np.uint16(0)),
        (bytes(buf), spans),
    )


def _bits(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(struct.pack("<d", v) if isinstance(v, float) else (type(v).__name__, v) for v in row)


def _state(books: Books) -> list[tuple[tuple[str, str], str]]:
    """Every keeper's attributes (private ones included), in creation order; repr tells ``1`` from ``True``,
    ``np.int64`` from ``int`` and shows floats exactly."""
    return [(key, repr(vars(keeper))) for key, keeper in books.keepers.items()]


@settings(max_examples=150, deadline=None)
@given(
    prior=st.lists(_prior(), max_size=6),
    ages=st.dictionaries(st.sampled_from([BTC, ETH, XRP]), st.sampled_from([0, 5 * MS, 10**12]), max_size=2),
    reads=st.lists(_read(), min_size=1, max_size=5),
)
@example(prior=[], ages={}, reads=[(0, 50, [(2, 0, "100", "1", "101", "1", 5), (0, 1, "1e2", "2", "99.5", "1", 6)])])
def test_columns_equal_the_per_update_path(
    prior: list[BookUpdate], ages: dict[str, int], reads: list[tuple[int, int, list[Row]]]
) -> None:
    one, many = (Books(emit_levels=False, max_age_ns={"bybit": MAX_AGE}) for _ in range(2))
    for books in (one, many):
        for symbol, age in ages.items():  # keepers with their own max_age
            books.keeper("bybit", symbol).max_age_ns = age
        books.apply_batch(prior, Rows())
    for table, ts_offset, rows in reads:
        names = TABLES[table]
        ts_recv = T0 + ts_offset * MS
        updates = [_update(names[r[0]], r, ts_recv) for r in rows]
        later = any(k.ts_recv > ts_recv for k in (one.keepers.get(("bybit", u.symbol)) for u in updates) if k)
        before = _state(many)
        got = many.apply_snapshot_columns(_columns(names, rows, ts_recv))
        expected = one.apply_batch(updates, Rows()).quotes
        if got is None:
            assert later
            assert _state(many) == before
            many.apply_batch(updates, Rows())  # what the connector falls back to
        else:
            assert not later
            assert got.ts_event.dtype == np.int64
            assert got.flags.dtype == np.uint16
            assert got.symbols is names
            assert [_bits(r) for r in got.rows()] == [_bits(r) for r in expected]
        assert _state(many) == _state(one)


def test_empty_read_changes_nothing() -> None:
    books = Books(emit_levels=False)
    got = books.apply_snapshot_columns(_columns([BTC], [], T0))
    assert got is not None
    assert len(got) == 0
    assert books.keepers == {}


def test_declines_without_texts_or_with_levels_wanted() -> None:
    rows: list[Row] = [(0, 0, "100", "1", "101", "1", 5)]
    cols = _columns([BTC], rows, T0)
    assert Books(emit_levels=True).apply_snapshot_columns(cols) is None
    cols.level_texts = None
    books = Books(emit_levels=False)
    assert books.apply_snapshot_columns(cols) is None
    assert books.keepers == {}


def test_table_rebuilt_between_reads() -> None:
    """A new symbol list (the adapter rebuilt its table) regroups the codes; an equal list is a new table too."""
    books = Books(emit_levels=False)
    for names in ([BTC, ETH], [ETH, BTC, SOL], list(TABLES[0])):
        rows: list[Row] = [(code, 0, "100", "1", "101", "1", code + 1) for code in range(len(names))]
        got = books.apply_snapshot_columns(_columns(names, rows, T0))
        assert got is not None
        for code, name in enumerate(names):
            if names.index(name) == code and name not in names[code + 1 :]:
                assert books.keepers[("bybit", name)].last_seq == code + 1


def test_code_outside_the_table_raises() -> None:
    with pytest.raises(IndexError):
        Books(emit_levels=False).apply_snapshot_columns(_columns([BTC], [(1, 0, "100", "1", "101", "1", 5)], T0))


def test_replace_with_reference_is_one_level() -> None:
    """The reference path's own precondition: every generated update replaces its book unchecked."""
    update = _update(BTC, (0, 0, "100", "1", "101", "1", 5), T0)
    assert BookKeeper("bybit", BTC).replaces(update)
