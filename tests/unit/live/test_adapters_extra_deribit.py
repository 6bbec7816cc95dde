"""Deribit against more real messages (tests/resources/messages/extra/deribit.jsonl).

Every expected value was read off the message by hand (decimal strings, ms times, change ids); the assertions
compare the parsed rows with those, never with the parser's own output.  Top-of-book messages also go through
the compiled column reader (equal rows bit for bit, or a decline), book channels through the book keeper.
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
from arbkit.schema import QuoteFlag
from live import adapters
from live.book import BookKeeper, Books

EXTRA = Path(__file__).parents[2] / "resources" / "messages" / "extra"
TS_RECV = 1_800_000_000_000_000_000
MS = 1_000_000
TABLES = {
    "quotes": schema.QUOTES,
    "trades": schema.TRADES,
    "funding": schema.FUNDING,
    "option_quotes": schema.OPTION_QUOTES,
}


LINES: list[dict[str, Any]] = [
    json.loads(text) for text in (EXTRA / "deribit.jsonl").read_text().splitlines() if text.strip()
]
BY_ID = {line["expected"]["id"]: line for line in LINES}
CASES = [pytest.param(line, id=f"{i}-{line['expected']['id']}") for i, line in enumerate(LINES)]


def _num(text: str | None) -> float | None:
    """A decimal string read off the message as the nearest double (``None`` stays ``None``)."""
    return float(Decimal(text)) if text is not None else None


def _raw(line: dict[str, Any]) -> bytes:
    return str(line["raw_text"]).encode()


def _one(line: dict[str, Any]) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    """One message as a one-message socket read for :meth:`parse_quote_columns`."""
    raw = _raw(line)
    return raw, np.zeros(1, dtype=np.int64), np.full(1, len(raw), dtype=np.int64), TS_RECV


def test_every_line_names_its_source() -> None:
    kinds = {line["source_kind"] for line in LINES}
    assert kinds <= {"oss_fixture_live_capture", "oss_fixture_docs_derived", "venue_docs"}
    assert all(line["source"].startswith(("github.com/", "https://")) for line in LINES)
    assert all(isinstance(json.loads(line["raw_text"]), dict) for line in LINES)


def _kind(*kinds: str) -> list[Any]:
    return [case for case in CASES if case.values[0]["expected"]["kind"] in kinds]


@pytest.mark.parametrize("line", _kind("error"))
def test_errors_and_unsupported_pushes_raise_a_clear_parse_error(line: dict[str, Any]) -> None:
    ad = adapters.get("deribit")
    raw = _raw(line)
    for parse in (ad.parse, ad.parse_rows, ad.parse_quote_tuple):
        with pytest.raises(ad.ParseError, match=line["expected"]["error_match"]):
            parse(raw, TS_RECV)
    assert ad.parse_quote_columns(*_one(line)) is None


@pytest.mark.parametrize("line", _kind("empty"))
def test_acks_heartbeats_and_rpc_replies_give_nothing(line: dict[str, Any]) -> None:
    ad = adapters.get("deribit")
    rows = ad.parse_rows(_raw(line), TS_RECV)
    assert rows.empty
    assert not rows.greeks
    assert ad.parse(_raw(line), TS_RECV).empty
    assert ad.parse_quote_tuple(_raw(line), TS_RECV) is None
    assert ad.parse_quote_columns(*_one(line)) is None


@pytest.mark.parametrize("line", _kind("quote", "option_quote", "trades", "book"))
def test_data_message_gives_what_it_says(line: dict[str, Any]) -> None:
    ad = adapters.get("deribit")
    expected = line["expected"]
    kind = expected["kind"]
    parsed = ad.parse(_raw(line), TS_RECV)
    for name, table in TABLES.items():
        frame = getattr(parsed, name)
        if frame is not None:
            schema.validate(frame, table)
            assert frame["ts_recv"].to_list() == [TS_RECV] * frame.height
    if kind == "quote":
        assert parsed.option_quotes is None
        assert parsed.quotes is not None
        assert parsed.quotes.height == 1
        assert parsed.quotes.row(0) == (
            expected["ts_ms"] * MS,
            TS_RECV,
            "deribit",
            expected["unified"],
            _num(expected["bid"]),
            _num(expected["bid_size"]),
            _num(expected["ask"]),
            _num(expected["ask_size"]),
            None,
            0,
        )
        if "funding_8h" in expected:
            assert parsed.funding is not None
            row = parsed.funding.row(0, named=True)
            assert row["symbol"] == expected["unified"]
            assert row["funding_rate"] == _num(expected["funding_8h"])
            assert row["mark_price"] == _num(expected["mark_price"])
            assert row["index_price"] == _num(expected["index_price"])
            assert row["next_funding_time"] is None
            assert row["ts_event"] == expected["ts_ms"] * MS
        else:
            assert parsed.funding is None
    elif kind == "option_quote":
        _check_option(parsed, expected)
    elif kind == "trades":
        assert parsed.trades is not None
        assert parsed.trades.rows() == [
            (
                t["ts_ms"] * MS,
                TS_RECV,
                "deribit",
                t["unified"],
                t["trade_id"],
                t["side"],
                _num(t["price"]),
                _num(t["size"]),
                0,
            )
            for t in expected["trades"]
        ]
    elif kind == "book":
        _check_book(parsed.book_updates, expected)
        assert parsed.quotes is None
    else:
        raise AssertionError(f"unknown kind {kind!r}")


def _check_option(parsed: Any, expected: dict[str, Any]) -> None:
    assert parsed.quotes is None
    assert parsed.option_quotes is not None
    assert parsed.option_quotes.height == 1
    row = parsed.option_quotes.row(0, named=True)
    assert row["symbol"] == expected["unified"]
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (
        _num(expected["bid"]),
        _num(expected["bid_size"]),
        _num(expected["ask"]),
        _num(expected["ask_size"]),
    )
    assert row["ts_event"] == expected["ts_ms"] * MS
    assert row["mark_price"] == _num(expected["mark_price"])
    for name in ("mark_iv", "bid_iv", "ask_iv"):
        assert row[name] == pytest.approx(float(Decimal(expected[f"{name}_pct"]) / 100), abs=1e-15)
    assert row["underlying_price"] == _num(expected["underlying_price"])
    assert row["underlying"] == expected["unified"].split(":")[0]
    expiry = dt.datetime.fromisoformat(expected["expiry_utc"].replace("Z", "+00:00"))
    assert row["expiry"] == int(expiry.timestamp()) * 1_000_000_000
    assert row["strike"] == _num(expected["strike"])
    assert row["option_type"] == expected["option_type"]
    assert row["flags"] == 0
    assert parsed.greeks is not None
    greeks = parsed.greeks.row(0, named=True)
    for name, value in expected["greeks"].items():
        assert greeks[name] == _num(value)


def _check_book(updates: list[Any], expected: dict[str, Any]) -> None:
    assert len(updates) == 1
    update = updates[0]
    assert update.symbol == expected["unified"]
    assert update.is_snapshot is expected["is_snapshot"]
    assert update.seq == expected["change_id"]
    assert update.prev_seq == expected.get("prev_change_id")
    assert update.ts_event == expected["ts_ms"] * MS
    if expected.get("grouped"):
        assert (update.rule, update.depth) == ("replace", expected["depth"])
    else:
        assert (update.rule, update.depth) == ("deribit", None)
    assert [lv[:2] for lv in update.bids] == [(_num(p), _num(s)) for p, s in expected["bids"]]
    assert [lv[:2] for lv in update.asks] == [(_num(p), _num(s)) for p, s in expected["asks"]]
    for lv in (*update.bids, *update.asks):  # the level texts read back to the same floats
        assert (float(lv[2]), float(lv[3])) == lv[:2]


@pytest.mark.parametrize("line", _kind("quote", "option_quote"))
def test_fast_paths_equal_slow_path_or_decline(line: dict[str, Any]) -> None:
    ad = adapters.get("deribit")
    raw = _raw(line)
    slow = ad.parse_rows(raw, TS_RECV)
    tuple_row = ad.parse_quote_tuple(raw, TS_RECV)
    if line["expected"]["kind"] == "option_quote":
        assert tuple_row is None  # options go to option_quotes only
        assert ad.parse_quote_columns(*_one(line)) is None
        return
    assert tuple_row == slow.quotes[0]
    for _ in range(2):  # the second run knows the symbol
        columns = ad.parse_quote_columns(*_one(line))
        if columns is not None:
            assert not slow.funding  # a funding row cannot travel in columns
            rows = columns.rows()
            assert rows == slow.quotes
            assert [np.float64(v).tobytes() for v in rows[0][4:8]] == [
                np.float64(v).tobytes() for v in slow.quotes[0][4:8]
            ]


@pytest.mark.parametrize("line", _kind("book"))
def test_book_message_through_the_keeper(line: dict[str, Any]) -> None:
    ad = adapters.get("deribit")
    expected = line["expected"]
    books = Books()
    keeper_key = ("deribit", expected["unified"])
    previous = expected.get("after") or expected.get("gap_after")
    if previous is not None:
        books.apply(ad.parse(_raw(BY_ID[previous]), TS_RECV).book_update)
    out = books.apply(ad.parse(_raw(line), TS_RECV + 1).book_update)
    keeper = books.keeper(*keeper_key)
    if expected.get("gap_after"):
        assert keeper.counters.gaps == 1
        assert keeper.needs_resync
        assert out.quotes
        assert out.quotes[-1][9] & QuoteFlag.RESYNCING
        return
    if not expected["is_snapshot"] and previous is None:
        assert not out.quotes  # a change without its snapshot is dropped
        return
    top = expected.get("book_after") or expected
    if "bid" not in top:
        return
    quote = out.quotes[-1]
    assert quote[4:8] == (_num(top["bid"]), _num(top["bid_size"]), _num(top["ask"]), _num(top["ask_size"]))
    assert quote[8] == expected["change_id"]
    assert keeper.counters.gaps == 0
    assert not keeper.needs_resync
    assert quote[9] & (QuoteFlag.RESYNCING | QuoteFlag.UNVERIFIED) == 0


def test_chained_snapshot_and_change_in_one_keeper() -> None:
    ad = adapters.get("deribit")
    keeper = BookKeeper("deribit", "BTC/USD:BTC", max_age_ns=10**30)
    for key in ("n_book_snap", "n_book_delta"):
        quote = keeper.apply(ad.parse(_raw(BY_ID[key]), TS_RECV).book_update)
    assert quote is not None
    assert [[lv[0], lv[1]] for lv in keeper.sorted_asks()] == [
        [42501.5, 700.0],
        [42502.0, 400.0],
        [42502.5, 900.0],
        [42503.0, 550.0],
    ]
    assert [[lv[0], lv[1]] for lv in keeper.sorted_bids()][:2] == [[42500.0, 950.0], [42499.5, 500.0]]
    assert len(keeper.bids) == 5  # 42498.5 changed in place by a "new" at an existing price
    assert keeper.bids[42498.5][1] == 300.0
