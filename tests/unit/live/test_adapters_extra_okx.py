"""OKX v5 adapter against more real messages (tests/resources/messages/extra/okx.jsonl).

Every line's ``expected`` was read off the message by hand (decimal strings, ``null`` for an absent side, the
unified symbol written from the CCXT convention); the assertions compare the parsed rows with those values, never
with the parser's own output.  Top-of-book lines also go through the compiled column reader, which must give
the slow path's rows bit for bit or decline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbkit import schema
from live import adapters
from live.book import BookKeeper

EXTRA = Path(__file__).parents[2] / "resources" / "messages" / "extra"
TS_RECV = 1_800_000_000_000_000_000


def _lines() -> list[dict[str, Any]]:
    with (EXTRA / "okx.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()]


LINES = _lines()
CASES = [pytest.param(line, id=f"{i}-{line['channel']}") for i, line in enumerate(LINES)]


def _num(text: str | None) -> float | None:
    return None if text is None else float(text)


def _kind(kind: str) -> list[Any]:
    return [c for c in CASES if c.values[0]["expected"]["kind"] == kind]


def test_every_line_names_its_source() -> None:
    for line in LINES:
        assert line["source"].startswith(("github.com/", "https://"))
        assert line["source_kind"] in ("oss_fixture_live_capture", "oss_fixture_docs_derived", "venue_docs")


@pytest.mark.parametrize("line", CASES)
def test_frames_are_valid(line: dict[str, Any]) -> None:
    expected = line["expected"]
    ad = adapters.get("okx")
    raw = line["raw_text"].encode()
    if expected["kind"] == "error":
        with pytest.raises(ad.ParseError, match=expected["match"]):
            ad.parse(raw, TS_RECV)
        with pytest.raises(adapters.ParseError):
            ad.parse_quote_tuple(raw, TS_RECV)
        return
    parsed = ad.parse(raw, TS_RECV)
    if expected["kind"] == "empty":
        assert parsed.empty
        assert ad.parse_quote_tuple(raw, TS_RECV) is None
        return
    assert not parsed.empty
    assert ad.unified_symbol(expected["symbol"]) == expected["unified"]
    for name in ("quotes", "trades", "book", "funding", "option_quotes"):
        frame = getattr(parsed, name)
        if frame is not None:
            schema.validate(frame, getattr(schema, name.upper()))
            assert set(frame["symbol"]) == {expected["unified"]}


@pytest.mark.parametrize("line", _kind("quote") + _kind("option_quote"))
def test_top_of_book(line: dict[str, Any]) -> None:
    expected = line["expected"]
    ad = adapters.get("okx")
    raw = line["raw_text"].encode()
    parsed = ad.parse(raw, TS_RECV)
    frame = parsed.option_quotes if expected["kind"] == "option_quote" else parsed.quotes
    other = parsed.quotes if expected["kind"] == "option_quote" else parsed.option_quotes
    assert frame is not None
    assert other is None
    assert frame.height == 1
    row = frame.row(0, named=True)
    want = (_num(expected["bid"]), _num(expected["bid_size"]), _num(expected["ask"]), _num(expected["ask_size"]))
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == want
    assert row["symbol"] == expected["unified"]
    assert row["ts_event"] == expected["ts_ms"] * 1_000_000
    assert row["ts_recv"] == TS_RECV
    if expected["kind"] == "quote":
        assert row["seq"] == expected["seq_id"]
        fast = ad.parse_quote_tuple(raw, TS_RECV)
        assert fast is not None
        assert fast[4:8] == want
        assert fast == parsed.quotes.row(0)  # type: ignore[union-attr]


@pytest.mark.parametrize("line", _kind("quote"))
def test_columns_give_the_slow_rows_or_decline(line: dict[str, Any]) -> None:
    ad = adapters.get("okx")
    raw = line["raw_text"].encode()
    slow = ad.parse_rows(raw, TS_RECV).quotes  # maps the symbol, as the connector's first message would
    buf = raw + b"\n" + raw
    starts = np.array([0, len(raw) + 1], np.int64)
    ends = np.array([len(raw), 2 * len(raw) + 1], np.int64)
    cols = ad.parse_quote_columns(buf, starts, ends, TS_RECV)
    if cols is None:
        return
    rows = cols.rows()
    assert rows == slow + slow
    for got in rows:
        for a, b in zip(got[4:8], slow[0][4:8], strict=True):
            assert a is not None
            assert b is not None
            assert np.float64(a).tobytes() == np.float64(b).tobytes()


@pytest.mark.parametrize("line", _kind("trade"))
def test_trades(line: dict[str, Any]) -> None:
    expected = line["expected"]
    trades = adapters.get("okx").parse(line["raw_text"].encode(), TS_RECV).trades
    assert trades is not None
    got = [
        (r["trade_id"], r["side"], r["price"], r["size"], r["ts_event"], r["symbol"])
        for r in trades.iter_rows(named=True)
    ]
    want = [
        (t["trade_id"], t["side"], float(t["price"]), float(t["size"]), t["ts_ms"] * 1_000_000, expected["unified"])
        for t in expected["trades"]
    ]
    assert got == want


@pytest.mark.parametrize("line", _kind("funding"))
def test_funding(line: dict[str, Any]) -> None:
    expected = line["expected"]
    funding = adapters.get("okx").parse(line["raw_text"].encode(), TS_RECV).funding
    assert funding is not None
    row = funding.row(0, named=True)
    assert row["symbol"] == expected["unified"]
    assert row["funding_rate"] == float(expected["funding_rate"])
    assert row["predicted_rate"] == _num(expected["next_funding_rate"])
    assert row["next_funding_time"] == expected["funding_ts_ms"] * 1_000_000
    ts_ms = expected["ts_ms"]
    assert row["ts_event"] == (TS_RECV if ts_ms is None else ts_ms * 1_000_000)


@pytest.mark.parametrize("line", _kind("book"))
def test_book_updates(line: dict[str, Any]) -> None:
    expected = line["expected"]
    parsed = adapters.get("okx").parse(line["raw_text"].encode(), TS_RECV)
    assert parsed.quotes is None  # the keeper makes the quotes of incremental books
    update = parsed.book_update
    assert update is not None
    assert update.rule == "okx"
    assert update.symbol == expected["unified"]
    assert update.is_snapshot is expected["is_snapshot"]
    assert update.depth == expected["depth"]
    assert [[lv[2], lv[3]] for lv in update.bids] == expected["bids"]
    assert [[lv[2], lv[3]] for lv in update.asks] == expected["asks"]
    assert [lv[:2] for lv in update.bids] == [(float(p), float(s)) for p, s in expected["bids"]]
    assert (update.seq, update.prev_seq, update.checksum) == (
        expected["seq_id"],
        expected["prev_seq_id"],
        expected["checksum"],
    )
    assert update.ts_event == expected["ts_ms"] * 1_000_000
    keeper = BookKeeper("okx", update.symbol, max_age_ns=10**30)
    quote = keeper.apply(update)
    if not expected["is_snapshot"]:
        assert quote is None  # an update before any snapshot is dropped, never shown as a book
        assert keeper.counters.dropped == 1
        return
    assert quote is not None
    assert quote[4:8] == (
        float(expected["bid"]),
        float(expected["bid_size"]),
        float(expected["ask"]),
        float(expected["ask_size"]),
    )


@pytest.mark.parametrize("line", _kind("books5"))
def test_books5(line: dict[str, Any]) -> None:
    expected = line["expected"]
    parsed = adapters.get("okx").parse(line["raw_text"].encode(), TS_RECV)
    update = parsed.book_update
    assert update is not None
    assert (update.rule, update.is_snapshot, update.depth) == ("replace", True, 5)
    assert (len(update.bids), len(update.asks)) == (expected["bid_levels"], expected["ask_levels"])
    sides = (
        (update.bids, expected["best_bid"], expected["worst_bid"]),
        (update.asks, expected["best_ask"], expected["worst_ask"]),
    )
    for levels, best, worst in sides:
        if best is None:
            assert levels == ()
            continue
        assert [levels[0][2], levels[0][3]] == best
        assert [levels[-1][2], levels[-1][3]] == worst
    assert parsed.book is not None
    assert parsed.book.height == expected["bid_levels"] + expected["ask_levels"]
    assert set(parsed.book["ts_event"]) == {expected["ts_ms"] * 1_000_000}
    top = parsed.option_quotes if expected["unified"][-2] == "-" else parsed.quotes
    assert top is not None
    row = top.row(0, named=True)
    want = (_num(expected["bid"]), _num(expected["bid_size"]), _num(expected["ask"]), _num(expected["ask_size"]))
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == want
