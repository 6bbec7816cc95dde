"""The compiled columnar parsers against the per-message slow path, on fixtures and generated messages.

The reference for every message is the adapter's own per-message path (``parse_rows`` and ``parse_quote_tuple``,
or for Bybit the book keeper fed ``parse_rows``' update): the columns must equal it bit for bit, or decline.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from arbkit import schema
from live import adapters
from live.adapters import Adapter, QuoteRow
from live.adapters._base import iso_to_ns
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import K_ISO, Leaf, Obj, Roles, SymbolTable, compile_plan, extract
from live.book import Books

sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
import contextlib

from bench_parse import _messages

TS = 1_800_000_000_000_000_000
MESSAGES = Path(__file__).parents[2] / "resources" / "messages"
RESOURCES = [MESSAGES, MESSAGES / "docs", Path(__file__).parents[4] / "shared" / "fixtures" / "messages"]
MARKETS: dict[str, str | None] = {"binance": "linear", "bybit": "linear"}


def pack(messages: list[bytes]) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    ends = np.cumsum(lengths)
    return b"".join(messages), ends - lengths, ends


def bits(row: QuoteRow | tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with floats as their bit patterns, so -0.0 != 0.0 and every last bit counts."""
    return tuple(struct.pack("<d", v) if isinstance(v, float) else (type(v).__name__, v) for v in row)


def reference(ad: Adapter, raw: bytes) -> QuoteRow | None:
    """The per-message path's single quote for ``raw``, or ``None`` when it raises or gives anything else."""
    try:
        rows = ad.parse_rows(raw, TS)
        tuple_row = ad.parse_quote_tuple(raw, TS)
    except adapters.ParseError:
        return None
    if ad.exchange == "bybit":  # one book update and nothing else; the keeper makes the quote (see check)
        if len(rows.book_updates) != 1 or rows.quotes or rows.trades or rows.funding:
            return None
        out = Books(emit_levels=False).apply_batch(rows.book_updates, adapters.Rows())
        return out.quotes[0] if len(out.quotes) == 1 else None
    others = rows.trades or rows.book or rows.funding or rows.option_quotes or rows.book_updates or rows.greeks
    if len(rows.quotes) != 1 or others:
        return None
    assert tuple_row is not None
    assert bits(tuple_row) == bits(rows.quotes[0])
    return rows.quotes[0]


def columns(ad: Adapter, messages: list[bytes]) -> QuoteColumns | None:
    buf, starts, ends = pack(messages)
    if ad.exchange == "bybit":
        snapshots = ad.parse_book_columns(buf, starts, ends, TS)
        return None if snapshots is None else Books(emit_levels=False).apply_snapshot_columns(snapshots)
    return ad.parse_quote_columns(buf, starts, ends, TS)


def check(ad: Adapter, messages: list[bytes]) -> bool:
    """Columns of ``messages`` are ``None`` or every message's reference row; True when they were read."""
    for raw in messages:  # the slow path maps each symbol once, as in the connector
        with contextlib.suppress(adapters.ParseError):
            ad.parse_rows(raw, TS)
    cols = columns(ad, messages)
    if cols is None:
        return False
    expected = [reference(ad, raw) for raw in messages]
    assert None not in expected, [m for m, e in zip(messages, expected, strict=True) if e is None][:1]
    assert cols.ts_recv == TS
    assert len(cols) == len(messages)
    if ad.exchange == "bybit":  # one keeper set for the whole batch, message by message
        books = Books(emit_levels=False)
        for k, raw in enumerate(messages):
            out = books.apply_batch(ad.parse_rows(raw, TS).book_updates, adapters.Rows())
            expected[k] = out.quotes[0]
    assert [bits(r) for r in cols.rows()] == [bits(e) for e in expected if e is not None]
    if ad.exchange != "bybit":
        batch = ad.parse_quote_batch(messages, TS)
        if batch is not None:
            assert [bits(r) for r in batch] == [bits(r) for r in cols.rows()]
    return True


def adapter(venue: str) -> Adapter:
    return adapters.get(venue, MARKETS.get(venue))


def fixture_lines(venue: str) -> list[bytes]:
    out = []
    for root in RESOURCES:
        path = root / f"{venue}.jsonl"
        if path.exists():
            out += [json.loads(line)["raw_text"].encode() for line in path.read_text().splitlines() if line.strip()]
    return out


@pytest.mark.parametrize("venue", adapters.VENUES)
def test_fixtures_match_the_slow_path(venue: str) -> None:
    read = 0
    for market in {None, MARKETS.get(venue)}:
        for raw in fixture_lines(venue):
            ad = adapters.get(venue, market)
            read += check(ad, [raw])
            read += check(ad, [raw, raw, raw])
    if venue != "bybit":  # the docs' Bybit snapshots are deeper than one level
        assert read > 0, f"no {venue} fixture was read by the columnar path"


@pytest.mark.parametrize("venue", adapters.VENUES)
def test_generated_messages_are_read_and_match(venue: str) -> None:
    ad = adapter(venue)
    messages = _messages(venue, 600)
    assert check(ad, messages)
    cols = columns(ad, messages)
    assert cols is not None
    assert cols.frame().equals(pl.DataFrame(cols.rows(), schema=schema.QUOTES.polars, orient="row"))


@pytest.mark.parametrize("venue", adapters.VENUES)
def test_17_digit_prices_are_read_and_match(venue: str) -> None:
    """Shortest reprs past Clinger's fast path (``60000.100000000006``, as the simulator renders) are read."""
    messages = _messages(venue, 600, long_floats=True)
    assert sum(re.search(rb"\d{5}\.\d{11}", m) is not None for m in messages) > 500  # 16-17 digit prices
    assert check(adapter(venue), messages)


@pytest.mark.parametrize("venue", adapters.VENUES)
def test_unknown_symbol_declines_until_the_slow_path_mapped_it(venue: str) -> None:
    ad = adapter(venue)
    messages = _messages(venue, 3)
    buf, starts, ends = pack(messages)
    fast = ad.parse_book_columns if venue == "bybit" else ad.parse_quote_columns
    assert fast(buf, starts, ends, TS) is None
    ad.parse_rows(messages[0], TS)
    assert fast(buf, starts, ends, TS) is not None


def test_frame_schema_nulls_and_last_rows() -> None:
    ad = adapter("okx")
    with_seq = _messages("okx", 2)
    without = with_seq[1].replace(b',"seqId":363996338', b"")
    assert check(ad, [with_seq[0], without])
    cols = columns(ad, [with_seq[0], without])
    assert cols is not None
    frame = cols.frame()
    assert frame.schema == schema.QUOTES.polars
    assert frame["seq"].to_list() == [363996337, None]
    assert cols.last_rows() == {"BTC/USDT:USDT": cols.row(1)}
    empty = ad.parse_quote_columns(b"", np.zeros(0, np.int64), np.zeros(0, np.int64), TS)
    assert empty is not None
    assert len(empty) == 0
    assert empty.frame().schema == schema.QUOTES.polars


def test_last_rows_keeps_the_latest_of_two_spellings() -> None:
    ad = adapter("kraken")
    old = (
        b'{"channel":"ticker","type":"update","data":[{"symbol":"XBT/USD","bid":1.5,"bid_qty":1,"ask":2,"ask_qty":3}]}'
    )
    new = old.replace(b"XBT/USD", b"BTC/USD").replace(b"1.5", b"1.25")
    assert check(ad, [old, new])
    cols = columns(ad, [old, new])
    assert cols is not None
    assert cols.last_rows() == {"BTC/USD": cols.row(1)}


@pytest.mark.parametrize(
    ("venue", "mutate"),
    [
        ("binance", lambda m: m.replace(b'"b":"', b'"b":"-')),  # negative price: the slow path raises
        ("binance", lambda m: m.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"')),  # escape in the symbol
        ("binance", lambda m: m.replace(b'"u":', b'"\\u0075":')),  # an escaped key could spell a field
        ("binance", lambda m: m[:-1] + b',"s":"BTCUSDT"}'),  # duplicate key
        ("binance", lambda m: re.sub(rb'"A":"[^"]*"', b'"A":"0.12345678901234567891"', m)),  # 20 digits: inexact
        ("binance", lambda m: m.replace(b'"e":"bookTicker"', b'"e":"depthUpdate"')),  # another channel
        ("binance", lambda m: m + b" x"),  # trailing garbage
        ("binance", lambda m: re.sub(rb'"T":\d+', b'"T":99999999999999', m)),  # < 10**14 ms, past int64 ns
        ("okx", lambda m: m.replace(b'"bbo-tbt"', b'"books5"')),
        ("okx", lambda m: m.replace(b'"ts":"', b'"ts":"0')),  # a leading zero
        ("okx", lambda m: m.replace(b'"seqId":', b'"seqId":1.')),  # not an integer
        ("coinbase", lambda m: m.replace(b'"best_bid":"', b'"best_bid":"0').replace(b'"0', b'"', 0)),
        ("coinbase", lambda m: m.replace(b"Z", b"+00:00")),  # not the ISO shape iso_to_ns reads
        ("kraken", lambda m: m.replace(b'"bid":', b'"bid":"').replace(b',"bid_qty"', b'","bid_qty"')),  # a string
        ("deribit", lambda m: m.replace(b'"best_bid_price":', b'"funding_8h":0.1,"best_bid_price":')),  # a funding row
        ("bybit", lambda m: m.replace(b'"snapshot"', b'"delta"')),
        ("bybit", lambda m: m.replace(b'"b":[["', b'"b":[["1","0"],["')),  # two levels
    ],
)
def test_odd_messages_decline(venue: str, mutate: Any) -> None:
    ad = adapter(venue)
    good = _messages(venue, 2)
    assert check(ad, good)
    bad = mutate(good[1])
    assert bad != good[1]
    assert columns(ad, [good[0], bad]) is None
    check(ad, [good[0], bad])  # and whatever the slow path makes of it, nothing contradicts it


def test_bybit_keeper_state_matches_the_per_message_path() -> None:
    ad = adapter("bybit")
    messages = _messages("bybit", 40)
    eth = [m.replace(b"BTCUSDT", b"ETHUSDT").replace(b'"b":[["6', b'"b":[["7') for m in messages[::3]]  # crossed
    stale = re.sub(rb'"cts":\d+', b'"cts":1600000000000', messages[5])  # event time far behind: STALE
    batch = messages[:20] + eth + [stale] + messages[20:]
    for raw in batch:
        ad.parse_rows(raw, TS)
    slow, fast = Books(emit_levels=False), Books(emit_levels=False)
    for books in (slow, fast):  # a keeper that already holds a book, a later event time included
        books.apply(ad.parse_rows(messages[30], TS - 10).book_update)
    updates = ad.parse_book_batch(batch, TS)
    assert updates is not None
    expected = slow.apply_batch(updates, adapters.Rows()).quotes
    snapshots = ad.parse_book_columns(*pack(batch), TS)
    assert snapshots is not None
    got = fast.apply_snapshot_columns(snapshots)
    assert got is not None
    assert [bits(r) for r in got.rows()] == [bits(r) for r in expected]
    assert any(r[9] & 2 for r in expected)
    assert any(r[9] & 1 for r in expected)
    assert slow.keepers.keys() == fast.keepers.keys()
    for key, keeper in slow.keepers.items():
        other = fast.keepers[key]
        for name in ("bids", "asks", "last_seq", "ts_event", "ts_recv", "synced", "resyncing", "counters", "_lagging"):
            assert getattr(other, name) == getattr(keeper, name), (key, name)
        assert other.quote() == keeper.quote()
        assert other.best_bid == keeper.best_bid
    # a keeper that saw a later receive time: declined, nothing changed
    assert fast.apply_snapshot_columns(ad.parse_book_columns(*pack(batch), TS - 1)) is None  # type: ignore[arg-type]
    assert fast.counters == slow.counters
    assert Books(emit_levels=True).apply_snapshot_columns(snapshots) is None


ISO_TEXTS = [
    "2023-10-06T17:35:55.440295Z",
    "2026-04-07T14:30:03.123456789Z",
    "2024-02-29T00:00:00Z",
    "1969-12-31T23:59:59.9Z",
    "0001-01-01T00:00:00.000000001Z",
    "9999-12-31T23:59:59.999999999Z",
    "2000-03-01T12:00:00.5Z",
    "2100-02-28T23:59:59.12345Z",
]
BAD_ISO = [
    "2023-02-29T00:00:00Z",
    "2023-13-01T00:00:00Z",
    "2023-10-06T24:00:00Z",
    "2023-10-06T17:35:60Z",
    "2023-10-06T17:35:55.Z",
    "2023-10-06T17:35:55.1234567890Z",
    "2023-10-06 17:35:55Z",
    "0000-01-01T00:00:00Z",
    "2023-10-06T17:35:55",
]


def test_iso_timestamps_in_the_kernel_match_iso_to_ns() -> None:
    plan = compile_plan(
        Obj({"t": Leaf(K_ISO, required=True), "s": Leaf(4, True), **{k: Leaf(1, True) for k in "bBaA"}}),
        Roles(("s",), ("b",), ("B",), ("a",), ("A",), ts=("t",), ts_ns=True),
    )
    table = SymbolTable()
    table.sync({"X": "X/Y"})
    for text in ISO_TEXTS + BAD_ISO:
        raw = f'{{"t":"{text}","s":"X","b":1,"B":1,"a":2,"A":1}}'.encode()
        out = extract(plan, table, raw, np.array([0]), np.array([len(raw)]), TS)
        try:
            expected = iso_to_ns(text)
        except ValueError:
            assert out is None, text
            continue
        if not -(2**63) <= expected < 2**63:
            assert out is None, text  # the slow path's Python int fits no int64 column
            continue
        assert out is not None, text
        assert int(out.ts_event[0]) == expected, text


def test_offsets_outside_the_buffer_raise() -> None:
    ad = adapter("binance")
    with pytest.raises(ValueError, match="outside"):
        ad.parse_quote_columns(b"{}", np.array([0]), np.array([5]), TS)
