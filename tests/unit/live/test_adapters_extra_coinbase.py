"""Coinbase Advanced Trade against more real messages (tests/resources/messages/extra/coinbase.jsonl).

Every expected value was read off the message by hand (decimal strings, RFC 3339 times); the assertions compare
the parsed rows with those, never with the parser's own output.  Top-of-book messages also go through the
compiled column reader, which must give the slow path's row bit for bit or decline.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbkit import schema
from live import adapters
from live.book import Books

EXTRA = Path(__file__).parents[2] / "resources" / "messages" / "extra"
TS_RECV = 1_800_000_000_000_000_000


LINES = [json.loads(text) for text in (EXTRA / "coinbase.jsonl").read_text().splitlines() if text.strip()]
BY_ID = {line["expected"]["id"]: line for line in LINES}
CASES = [pytest.param(line, id=f"{i}-{line['expected']['id']}") for i, line in enumerate(LINES)]


def _ns(text: str) -> int:
    """RFC 3339 UTC text to ns, by hand: whole seconds through datetime, the fraction digits as written."""
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = int(dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


def _num(text: str | None) -> float | None:
    return None if text is None else float(Decimal(text))


def _raw(line: dict[str, Any]) -> bytes:
    return str(line["raw_text"]).encode()


def test_sources_are_recorded() -> None:
    for line in LINES:
        assert line["source"].startswith(("github.com/", "https://"))
        assert line["source_kind"] in ("oss_fixture_live_capture", "oss_fixture_docs_derived", "venue_docs")
        assert json.loads(line["raw_text"])  # valid JSON, exact bytes


@pytest.mark.parametrize("line", CASES)
def test_message_gives_what_it_says(line: dict[str, Any]) -> None:
    ad = adapters.get("coinbase")
    expected = line["expected"]
    kind = expected["kind"]
    if kind == "error":
        with pytest.raises(ad.ParseError, match=expected["error_match"]):
            ad.parse(_raw(line), TS_RECV)
        assert ad.parse_quote_columns(*_one(line)) is None
        return
    parsed = ad.parse(_raw(line), TS_RECV)
    if kind in ("empty", "no_quote"):
        assert parsed.empty
        assert ad.parse_quote_tuple(_raw(line), TS_RECV) is None
        assert ad.parse_quote_columns(*_one(line)) is None
        if kind == "no_quote":
            assert ad.unified_symbol(expected["symbol"]) == expected["unified"]
        return
    for name, table in (("quotes", schema.QUOTES), ("trades", schema.TRADES)):
        frame = getattr(parsed, name)
        if frame is not None:
            schema.validate(frame, table)
    if kind == "quote":
        assert parsed.quotes is not None
        assert parsed.quotes.height == 1
        assert parsed.quotes.row(0) == (
            _ns(expected["ts_utc"]),
            TS_RECV,
            "coinbase",
            expected["unified"],
            _num(expected["bid"]),
            _num(expected["bid_size"]),
            _num(expected["ask"]),
            _num(expected["ask_size"]),
            expected["sequence_num"],
            0,
        )
    elif kind == "trades":
        assert parsed.trades is not None
        rows = parsed.trades.rows(named=True)
        assert len(rows) == len(expected["trades"])
        for row, want in zip(rows, expected["trades"], strict=True):
            assert row["symbol"] == want["unified"]
            assert row["trade_id"] == want["trade_id"]
            assert row["price"] == _num(want["price"])
            assert row["size"] == _num(want["size"])
            assert row["side"] == want["side"]
            assert row["ts_event"] == _ns(want["ts_utc"])
    elif kind == "book":
        update = parsed.book_update
        assert update is not None
        assert len(parsed.book_updates) == 1
        assert update.symbol == expected["unified"]
        assert update.rule == "coinbase"
        assert update.is_snapshot is expected["is_snapshot"]
        assert update.seq == expected["sequence_num"]
        assert update.ts_event == _ns(expected["ts_utc"])
        assert [[lv[2], lv[3]] for lv in update.bids] == expected["bids"]
        assert [[lv[2], lv[3]] for lv in update.asks] == expected["asks"]
        assert [lv[:2] for lv in update.bids] == [(_num(p), _num(s)) for p, s in expected["bids"]]
        assert [lv[:2] for lv in update.asks] == [(_num(p), _num(s)) for p, s in expected["asks"]]
        assert parsed.quotes is None  # the keeper makes the quotes
    else:
        raise AssertionError(f"unknown kind {kind!r}")


def _one(line: dict[str, Any]) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    raw = _raw(line)
    return raw, np.array([0], dtype=np.int64), np.array([len(raw)], dtype=np.int64), TS_RECV


QUOTE_CASES = [c for c in CASES if c.values[0]["expected"]["kind"] == "quote"]


@pytest.mark.parametrize("line", QUOTE_CASES)
def test_fast_paths_equal_slow_path_or_decline(line: dict[str, Any]) -> None:
    ad = adapters.get("coinbase")
    raw = _raw(line)
    slow = ad.parse_rows(raw, TS_RECV).quotes
    assert len(slow) == 1
    assert ad.parse_quote_tuple(raw, TS_RECV) == slow[0]
    batch = ad.parse_quote_batch([raw, raw], TS_RECV)
    assert batch is None or batch == slow * 2
    for _ in range(2):  # the second run knows the symbol (the slow path mapped it)
        columns = ad.parse_quote_columns(*_one(line))
        if columns is not None:
            rows = columns.rows()
            assert rows == slow
            assert [np.float64(v).tobytes() for v in rows[0][4:8]] == [np.float64(v).tobytes() for v in slow[0][4:8]]


def test_ticker_batch_without_top_of_book_in_a_column_batch_declines() -> None:
    ad = adapters.get("coinbase")
    ticker = _raw(BY_ID["d_ticker"])
    batch = _raw(BY_ID["c_batch"])
    ad.parse_rows(ticker, TS_RECV)
    buf = ticker + batch
    starts = np.array([0, len(ticker)], dtype=np.int64)
    ends = np.array([len(ticker), len(buf)], dtype=np.int64)
    assert ad.parse_quote_columns(buf, starts, ends, TS_RECV) is None
    assert ad.parse_quote_batch([ticker, batch], TS_RECV) is None


def test_level2_update_applied_to_snapshot() -> None:
    ad = adapters.get("coinbase")
    update_line = BY_ID["n_l2_upd"]
    books = Books()
    for key in (update_line["expected"]["after"], "n_l2_upd"):
        out = books.apply(ad.parse(_raw(BY_ID[key]), TS_RECV).book_update)
    after = update_line["expected"]["book_after"]
    quote = out.quotes[-1]
    assert quote[4:8] == (_num(after["bid"]), _num(after["bid_size"]), _num(after["ask"]), _num(after["ask_size"]))
    assert quote[8] == update_line["expected"]["sequence_num"]
    keeper = books.keeper("coinbase", "BTC/USD")
    assert keeper.counters.gaps == 0
    assert not keeper.needs_resync
    # the docs snapshot's epoch event_time and the nautilus one's real time are both event times kept as sent
    assert keeper.ts_event == _ns(update_line["expected"]["ts_utc"])
